using System.Diagnostics;
using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>
/// Loads an x86_64 Linux kernel into guest RAM and prepares the boot vCPU — the one entry point the CLI calls.
/// <para>
/// The kernel file's kind comes from its content: an ELF64 vmlinux, or a bzImage whose compressed payload (a
/// vmlinux ELF) is extracted and decompressed here by default — the kernel's own decompressor is minutes of
/// emulated CPL0 code on a PVM host (docs/host-kvm.md). The ELF is then entered through PVH when it has the PVH note,
/// else through the 64-bit boot protocol. <see cref="BootOptions.InGuestDecompression"/> selects the classic bzImage
/// boot instead (32-bit protocol at code32_start).
/// </para>
/// <para>
/// Guest-physical layout: <see cref="X86Layout"/>. The MP table is not written here (its CPU count is the CLI's):
/// call <see cref="MpTable.Write"/> as well. Errors are <see cref="KernelImageException"/> (the file) or
/// <see cref="BootException"/> (the setup), each with a one-sentence message.
/// </para>
/// </summary>
public static class LinuxBootLoader
{
    /// <summary>initrd_addr_max when the kernel does not say (boot.rst: protocols before 2.03).</summary>
    public const ulong DefaultInitrdAddrMax = 0x37FF_FFFF;
    private const ulong PageSize = 0x1000;

    /// <summary>What an arm64 kernel given to this x86_64 loader is told.</summary>
    public const string ArmKernelOnX86 = "this is an arm64 kernel; vmm boots it on an arm64 host, and x86_64 kernels on x86_64 hosts";

    /// <summary>Decides what <paramref name="kernelFile"/> is, by content.</summary>
    public static KernelImageKind DetectImage(ReadOnlySpan<byte> kernelFile)
    {
        if (ElfKernel.HasElfMagic(kernelFile))
        {
            return KernelImageKind.Elf;
        }
        if (BzImageHeader.HasSignature(kernelFile))
        {
            return KernelImageKind.BzImage;
        }
        if (KernelFiles.DetectArchitecture(kernelFile) == KernelArchitecture.Arm64)
        {
            throw new KernelImageException(ArmKernelOnX86);
        }
        throw new KernelImageException("not a Linux kernel: no ELF header and no bzImage 'HdrS' signature");
    }

    /// <summary>
    /// Loads the kernel, initrd (may be empty) and command line, writes the boot structures, and returns the boot
    /// vCPU state. <paramref name="memory"/> must have RAM from 0 (the low structures live below 640 KiB).
    /// </summary>
    public static LinuxBootResult Load(GuestMemory memory, ReadOnlySpan<byte> kernelFile, ReadOnlySpan<byte> initrd,
        KernelCmdline cmdline, BootOptions? options = null)
    {
        options ??= new BootOptions();
        var total = Stopwatch.StartNew();
        try
        {
            GuestRegion lowRegion = FindLowRegion(memory);
            KernelImageKind kind = DetectImage(kernelFile);
            BzImageHeader? header = kind == KernelImageKind.BzImage ? BzImageHeader.Parse(kernelFile) : null;
            if (header is not null && options.InGuestDecompression)
            {
                if (options.Entry != BootEntry.Auto)
                {
                    throw new BootException(
                        $"in-guest decompression uses the 32-bit boot protocol; entry method {options.Entry} cannot be combined with it");
                }
                return LoadBzImage32(memory, lowRegion, kernelFile, header, initrd, cmdline, total);
            }

            PayloadCompression? compression = null;
            TimeSpan decompressTime = TimeSpan.Zero;
            byte[]? extracted = null;
            if (header is not null)
            {
                var sw = Stopwatch.StartNew();
                extracted = PayloadDecompressor.Decompress(header.Payload(kernelFile), out PayloadCompression c,
                    options.MaxUncompressedKernelSize);
                decompressTime = sw.Elapsed;
                compression = c;
                if (!ElfKernel.HasElfMagic(extracted))
                {
                    throw new KernelImageException("bzImage payload did not decompress to an ELF vmlinux");
                }
            }
            ReadOnlySpan<byte> elfFile = extracted ?? kernelFile;
            ElfKernel elf = ElfKernel.Parse(elfFile);

            BootMethod method = options.Entry switch
            {
                BootEntry.Pvh when elf.PvhEntry is null => throw new BootException(
                    "the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH or use the 64-bit boot protocol"),
                BootEntry.Pvh => BootMethod.Pvh,
                BootEntry.Linux64 => BootMethod.Linux64,
                _ => elf.PvhEntry is null ? BootMethod.Linux64 : BootMethod.Pvh,
            };
            ulong entry;
            if (method == BootMethod.Pvh)
            {
                entry = elf.PvhEntry!.Value;
                if (!elf.ContainsPhysical(entry))
                {
                    throw new KernelImageException($"the PVH entry point 0x{entry:x} is not inside any loadable segment");
                }
            }
            else
            {
                entry = elf.PhysicalEntry();
                if (elf.PhysicalEnd > X86BootSetup.IdentityMapSize)
                {
                    throw new BootException(
                        $"the kernel ends at 0x{elf.PhysicalEnd:x}, beyond the 1 GiB identity map of the 64-bit boot protocol");
                }
            }
            elf.Load(elfFile, memory);

            var warnings = new List<string>();
            int cmdlineLimit = CmdlineLimit(header);
            string cmdlineText = WriteCmdline(memory, cmdline, cmdlineLimit);
            if (header is null && cmdlineText.Length > KernelCmdline.TypicalKernelLimit)
            {
                warnings.Add($"the kernel command line is {cmdlineText.Length} bytes; kernels built with the default " +
                             $"COMMAND_LINE_SIZE keep only the first {KernelCmdline.TypicalKernelLimit}");
            }
            ulong initrdAddress = WriteInitrd(memory, initrd, elf.PhysicalEnd, lowRegion.End,
                header?.InitrdAddrMax ?? DefaultInitrdAddrMax);
            E820Entry[] e820 = E820Map.Build(memory);

            X86BootCpuState cpu;
            if (method == BootMethod.Pvh)
            {
                PvhStartInfo.Write(memory, X86Layout.CmdlineAddress, initrdAddress, (ulong)initrd.Length, e820);
                cpu = X86BootSetup.ProtectedMode32(memory, entry, rbx: X86Layout.PvhStartInfoAddress, rsi: 0, "PVH 32-bit");
            }
            else
            {
                ReadOnlySpan<byte> rawHeader = header is null ? default : header.RawHeader(kernelFile);
                ZeroPage.Write(memory, rawHeader, (uint)cmdlineLimit, X86Layout.CmdlineAddress, initrdAddress,
                    (ulong)initrd.Length, e820);
                cpu = X86BootSetup.LongMode(memory, entry, rsi: X86Layout.ZeroPageAddress, "64-bit boot protocol");
            }
            return new LinuxBootResult
            {
                Cpu = cpu,
                ImageKind = kind,
                Method = method,
                Compression = compression,
                KernelStart = elf.PhysicalStart,
                KernelEnd = elf.PhysicalEnd,
                EntryPoint = entry,
                InitrdAddress = initrdAddress,
                InitrdSize = (ulong)initrd.Length,
                Cmdline = cmdlineText,
                KernelFileSize = kernelFile.Length,
                ElfSize = elfFile.Length,
                DecompressTime = decompressTime,
                TotalTime = total.Elapsed,
                Warnings = warnings,
            };
        }
        catch (GuestMemoryException e)
        {
            // Every range is validated before use; this is the safety net that keeps the message to one sentence.
            throw new BootException($"boot setup does not fit in guest RAM: {e.Message}", e);
        }
    }

    /// <summary>
    /// The classic bzImage boot: the protected-mode code goes to code32_start (normally 1 MiB) and is entered in
    /// 32-bit protected mode with ESI = boot_params (boot.rst "32-bit Boot Protocol"); the kernel decompresses and
    /// relocates itself. The real-mode setup code is not loaded: the 32-bit protocol never runs it.
    /// </summary>
    private static LinuxBootResult LoadBzImage32(GuestMemory memory, GuestRegion lowRegion, ReadOnlySpan<byte> file,
        BzImageHeader header, ReadOnlySpan<byte> initrd, KernelCmdline cmdline, Stopwatch total)
    {
        ReadOnlySpan<byte> code = header.ProtectedModeCode(file);
        ulong load = header.Code32Start != 0 ? header.Code32Start : X86Layout.HighMemoryStart;
        if (load < X86Layout.HighMemoryStart)
        {
            throw new KernelImageException($"bzImage code32_start 0x{load:x} lies below 1 MiB");
        }
        // Where the decompressor will work: a relocatable kernel runs at its load address rounded up to
        // kernel_alignment but not below pref_address (LOAD_PHYSICAL_ADDR); it needs init_size bytes from there.
        ulong runAddress = load;
        if (header.Version >= 0x020A)
        {
            ulong alignment = header.KernelAlignment is > 0 and var a && (a & (a - 1)) == 0 ? a : 1;
            runAddress = header.Relocatable ? Math.Max(AlignUp(load, alignment), header.PrefAddress) : header.PrefAddress;
        }
        if (runAddress < X86Layout.HighMemoryStart)
        {
            throw new KernelImageException($"bzImage would decompress itself at 0x{runAddress:x}, below 1 MiB");
        }
        // Header values are untrusted: saturate instead of wrapping, so a hostile pref_address/init_size fails the check.
        ulong kernelEnd = Math.Max(SaturatingAdd(load, (ulong)code.Length), SaturatingAdd(runAddress, header.InitSize));
        if (kernelEnd > lowRegion.End)
        {
            throw new BootException(
                $"the kernel needs RAM up to 0x{kernelEnd:x} to decompress itself but the first RAM region ends at " +
                $"0x{lowRegion.End:x}; give the VM more memory");
        }
        memory.WriteBytes(new GuestAddress(load), code);

        int cmdlineLimit = CmdlineLimit(header);
        string cmdlineText = WriteCmdline(memory, cmdline, cmdlineLimit);
        ulong initrdAddress = WriteInitrd(memory, initrd, kernelEnd, lowRegion.End, header.InitrdAddrMax);
        E820Entry[] e820 = E820Map.Build(memory);
        ZeroPage.Write(memory, header.RawHeader(file), (uint)cmdlineLimit, X86Layout.CmdlineAddress, initrdAddress,
            (ulong)initrd.Length, e820, code32Start: (uint)load);
        X86BootCpuState cpu = X86BootSetup.ProtectedMode32(memory, load, rbx: 0, rsi: X86Layout.ZeroPageAddress,
            "bzImage 32-bit protocol");
        return new LinuxBootResult
        {
            Cpu = cpu,
            ImageKind = KernelImageKind.BzImage,
            Method = BootMethod.BzImage32,
            KernelStart = load,
            KernelEnd = kernelEnd,
            EntryPoint = load,
            InitrdAddress = initrdAddress,
            InitrdSize = (ulong)initrd.Length,
            Cmdline = cmdlineText,
            KernelFileSize = file.Length,
            TotalTime = total.Elapsed,
        };
    }

    /// <summary>
    /// Where the initrd goes: page-aligned, as high as possible below min(end of the first RAM region,
    /// initrd_addr_max + 1), and not below the kernel's end.
    /// </summary>
    public static ulong PlaceInitrd(ulong size, ulong kernelEnd, ulong firstRegionEnd, ulong initrdAddrMax)
    {
        ulong limit = Math.Min(firstRegionEnd, initrdAddrMax == ulong.MaxValue ? ulong.MaxValue : initrdAddrMax + 1);
        ulong lowest = AlignUp(kernelEnd, PageSize);
        if (size > limit || ((limit - size) & ~(PageSize - 1)) < lowest)
        {
            throw new BootException(
                $"the {size}-byte initrd does not fit between the kernel end (0x{lowest:x}) and 0x{limit:x}; " +
                "give the VM more memory or use a smaller initrd");
        }
        return (limit - size) & ~(PageSize - 1);
    }

    private static GuestRegion FindLowRegion(GuestMemory memory)
    {
        GuestRegion? region = memory.FindRegion(new GuestAddress(0), X86Layout.HighMemoryStart);
        if (region is null || region.End <= X86Layout.HighMemoryStart)
        {
            throw new BootException("guest RAM must start at address 0 and extend beyond 1 MiB");
        }
        return region;
    }

    private static int CmdlineLimit(BzImageHeader? header) =>
        header is { CmdlineSize: > 0 } h && h.CmdlineSize < KernelCmdline.MaxLength ? (int)h.CmdlineSize : KernelCmdline.MaxLength;

    private static string WriteCmdline(GuestMemory memory, KernelCmdline cmdline, int limit)
    {
        byte[] bytes = cmdline.ToBytes(limit);
        memory.WriteBytes(new GuestAddress(X86Layout.CmdlineAddress), bytes);
        return System.Text.Encoding.UTF8.GetString(bytes, 0, bytes.Length - 1);
    }

    private static ulong WriteInitrd(GuestMemory memory, ReadOnlySpan<byte> initrd, ulong kernelEnd, ulong regionEnd,
        ulong initrdAddrMax)
    {
        if (initrd.IsEmpty)
        {
            return 0;
        }
        ulong address = PlaceInitrd((ulong)initrd.Length, kernelEnd, regionEnd, initrdAddrMax);
        memory.WriteBytes(new GuestAddress(address), initrd);
        return address;
    }

    private static ulong SaturatingAdd(ulong a, ulong b) => a + b < a ? ulong.MaxValue : a + b;

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
