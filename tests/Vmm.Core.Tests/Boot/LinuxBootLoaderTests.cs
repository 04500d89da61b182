using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Boot;
using Vmm.Core.Memory;
using Xunit.Abstractions;

namespace Vmm.Core.Tests.Boot;

public sealed class LinuxBootLoaderTests(ITestOutputHelper output)
{
    private const ulong MiB = 1 << 20;

    private static GuestMemory Ram(ulong size = 128 * MiB) => GuestMemory.CreateAnonymous((new GuestAddress(0), size));

    private static ulong U64(GuestMemory m, ulong a) => m.Read<ulong>(new GuestAddress(a));
    private static uint U32(GuestMemory m, ulong a) => m.Read<uint>(new GuestAddress(a));
    private static ushort U16(GuestMemory m, ulong a) => m.Read<ushort>(new GuestAddress(a));
    private static byte U8(GuestMemory m, ulong a) => m.Read<byte>(new GuestAddress(a));

    private static string CmdlineAt(GuestMemory m, ulong address)
    {
        Span<byte> area = m.GetSpan(new GuestAddress(address), X86Layout.CmdlineMaxSize);
        return System.Text.Encoding.UTF8.GetString(area[..area.IndexOf((byte)0)]);
    }

    [Fact]
    public void NotAKernel_OneClearSentence()
    {
        using GuestMemory mem = Ram();
        var e = Assert.Throws<KernelImageException>(() =>
            LinuxBootLoader.Load(mem, new byte[4096], [], KernelCmdline.Default()));
        Assert.Equal("not a Linux kernel: no ELF header and no bzImage 'HdrS' signature", e.Message);
        Assert.Throws<KernelImageException>(() => LinuxBootLoader.DetectImage("\x7fEL"u8));
    }

    [Fact]
    public void PvhVmlinux_WritesStartInfoMemmapModuleAndCmdline()
    {
        byte[] kernel = TestElf.Kernel(pvh: true);
        byte[] initrd = TestElf.Pattern(300_000, 9);
        using GuestMemory mem = Ram();
        LinuxBootResult r = LinuxBootLoader.Load(mem, kernel, initrd, KernelCmdline.Create("console=ttyS0 quiet"));
        output.WriteLine(r.Describe());

        Assert.Equal(BootMethod.Pvh, r.Method);
        Assert.Equal(KernelImageKind.Elf, r.ImageKind);
        Assert.Equal(0x100_0100ul, r.EntryPoint);
        Assert.Equal(r.EntryPoint, X86(r).Rip);
        Assert.Equal(X86Layout.PvhStartInfoAddress, X86(r).Rbx);

        ulong si = X86Layout.PvhStartInfoAddress;
        Assert.Equal(0x336E_C578u, U32(mem, si + 0));
        Assert.Equal(1u, U32(mem, si + 4));
        Assert.Equal(1u, U32(mem, si + 12));                      // nr_modules
        Assert.Equal(X86Layout.CmdlineAddress, U64(mem, si + 24)); // cmdline_paddr
        Assert.Equal(0ul, U64(mem, si + 32));                       // rsdp_paddr: no ACPI
        Assert.Equal("console=ttyS0 quiet", CmdlineAt(mem, U64(mem, si + 24)));

        ulong modlist = U64(mem, si + 16);
        Assert.Equal(r.InitrdAddress, U64(mem, modlist));
        Assert.Equal((ulong)initrd.Length, U64(mem, modlist + 8));
        Assert.Equal(initrd, mem.GetSpan(new GuestAddress(r.InitrdAddress), (ulong)initrd.Length).ToArray());

        ulong memmap = U64(mem, si + 40);
        uint entries = U32(mem, si + 48);
        var map = new List<(ulong Addr, ulong Size, uint Type)>();
        for (uint i = 0; i < entries; i++)
        {
            ulong e = memmap + i * 24;
            map.Add((U64(mem, e), U64(mem, e + 8), U32(mem, e + 16)));
            Assert.Equal(0u, U32(mem, e + 20)); // reserved
        }
        Assert.Contains((0ul, 0x9FC00ul, 1u), map);
        Assert.Contains((0x9FC00ul, 0x400ul, 2u), map);
        Assert.Contains((0x10_0000ul, 128 * MiB - 0x10_0000, 1u), map);
        Assert.Contains((X86Layout.PciEcamStart, X86Layout.PciEcamSize, 2u), map);
    }

    [Fact]
    public void PvhCpuState_IsFlat32BitProtectedModeWithPagingOff()
    {
        using GuestMemory mem = Ram();
        X86BootCpuState cpu = LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [], KernelCmdline.Default()).Cpu as X86BootCpuState ?? throw new InvalidOperationException();
        Assert.Equal(0x11ul, cpu.Cr0); // PE | ET, no PG
        Assert.Equal(0ul, cpu.Cr4);
        Assert.Equal(0ul, cpu.Efer);
        Assert.Equal(new X86Segment(0x10, 0, 0xFFFF_FFFF, 0xB, true, 0, true, false, true, true), cpu.Code);
        Assert.Equal(new X86Segment(0x18, 0, 0xFFFF_FFFF, 0x3, true, 0, true, false, true, true), cpu.Data);
        Assert.Equal(0xB, cpu.Task.Type);
        Assert.True(cpu.Task.Present);
        Assert.False(cpu.Task.CodeOrData);
        Assert.Equal(0x2ul, cpu.Rflags); // IF clear
    }

    [Fact]
    public void Linux64_ForVmlinuxWithoutPvhNote_WritesAZeroPage()
    {
        byte[] kernel = TestElf.Kernel(pvh: false);
        byte[] initrd = TestElf.Pattern(5000, 4);
        using GuestMemory mem = Ram();
        LinuxBootResult r = LinuxBootLoader.Load(mem, kernel, initrd, KernelCmdline.Create("root=/dev/ram0"));

        Assert.Equal(BootMethod.Linux64, r.Method);
        Assert.Equal(0x100_0040ul, X86(r).Rip);
        Assert.Equal(X86Layout.ZeroPageAddress, X86(r).Rsi);
        ulong zp = X86Layout.ZeroPageAddress;
        // Offsets pinned to arch/x86/include/uapi/asm/bootparam.h.
        Assert.Equal(0xAA55, U16(mem, zp + 0x1FE));                     // hdr.boot_flag
        Assert.Equal(0x53726448u, U32(mem, zp + 0x202));                // hdr.header "HdrS"
        Assert.Equal(0xFF, U8(mem, zp + 0x210));                        // hdr.type_of_loader
        Assert.Equal(1, U8(mem, zp + 0x211) & 1);                       // hdr.loadflags LOADED_HIGH
        Assert.Equal((uint)X86Layout.CmdlineAddress, U32(mem, zp + 0x228)); // hdr.cmd_line_ptr
        Assert.Equal((uint)KernelCmdline.MaxLength, U32(mem, zp + 0x238));  // hdr.cmdline_size
        Assert.Equal((uint)r.InitrdAddress, U32(mem, zp + 0x218));      // hdr.ramdisk_image
        Assert.Equal((uint)initrd.Length, U32(mem, zp + 0x21C));        // hdr.ramdisk_size
        Assert.Equal(0x100_0000u, U32(mem, zp + 0x230));                // hdr.kernel_alignment
        Assert.Equal(0, U8(mem, zp + 0x1EF));                           // sentinel stays 0
        Assert.Equal("root=/dev/ram0", CmdlineAt(mem, U32(mem, zp + 0x228)));

        int n = U8(mem, zp + 0x1E8);                                     // e820_entries
        Assert.Equal(5, n);
        var e820 = new List<(ulong, ulong, uint)>();
        for (int i = 0; i < n; i++)
        {
            ulong e = zp + 0x2D0 + (ulong)i * 20;                        // e820_table, packed 20-byte entries
            e820.Add((U64(mem, e), U64(mem, e + 8), U32(mem, e + 16)));
        }
        Assert.Equal(
        [
            (0ul, 0x9FC00ul, 1u),
            (0x9FC00ul, 0x400ul, 2u),
            (0xF0000ul, 0x10000ul, 2u),
            (0x10_0000ul, 128 * MiB - 0x10_0000, 1u),
            (X86Layout.PciEcamStart, X86Layout.PciEcamSize, 2u),
        ], e820);
    }

    [Fact]
    public void Linux64_CpuState_IsLongModeWithIdentityMapAndBootSelectors()
    {
        using GuestMemory mem = Ram();
        X86BootCpuState cpu = LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [], KernelCmdline.Default(),
            new BootOptions { Entry = BootEntry.Linux64 }).Cpu as X86BootCpuState ?? throw new InvalidOperationException();
        Assert.Equal(0x8000_0011ul, cpu.Cr0);
        Assert.Equal(0x20ul, cpu.Cr4);
        Assert.Equal(0x500ul, cpu.Efer);
        Assert.Equal(X86Layout.Pml4Address, cpu.Cr3);
        Assert.Equal(new X86Segment(0x10, 0, 0xFFFF_FFFF, 0xB, true, 0, false, true, true, true), cpu.Code);
        Assert.Equal((ushort)0x18, cpu.Data.Selector);
        Assert.Equal(X86Layout.BootStackPointer, cpu.Rsp);
        // The page tables translate the entry point to itself.
        ulong pml4e = U64(mem, X86Layout.Pml4Address);
        ulong pdpte = U64(mem, (pml4e & ~0xFFFul));
        ulong pde = U64(mem, (pdpte & ~0xFFFul) + ((cpu.Rip >> 21) & 0x1FF) * 8);
        Assert.Equal(0x83ul, pde & 0xFFF);
        Assert.Equal(cpu.Rip & ~0x1F_FFFFul, pde & ~0xFFFul);
    }

    [Fact]
    public void PvhRequested_WithoutNote_IsABootException()
    {
        using GuestMemory mem = Ram();
        var e = Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: false), [],
            KernelCmdline.Default(), new BootOptions { Entry = BootEntry.Pvh }));
        Assert.Contains("PVH", e.Message);
    }

    [Theory]
    [InlineData(PayloadCompression.Zstd)]
    [InlineData(PayloadCompression.Gzip)]
    [InlineData(PayloadCompression.Lz4)]
    public void BzImage_PayloadIsExtracted_SegmentsLoaded_HeaderCopied(PayloadCompression format)
    {
        byte[] elf = TestElf.Kernel(pvh: false);
        byte[] bz = TestBzImage.Build(KernelCompressors.Compress(format, elf, out _), cmdlineSize: 255, initrdAddrMax: 0x3FF_FFFF);
        using GuestMemory mem = Ram();
        LinuxBootResult r = LinuxBootLoader.Load(mem, bz, TestElf.Pattern(10_000, 1), KernelCmdline.Default());
        output.WriteLine(r.Describe());

        Assert.Equal(KernelImageKind.BzImage, r.ImageKind);
        Assert.Equal(format, r.Compression);
        Assert.Equal(BootMethod.Linux64, r.Method);
        Assert.Equal(elf.Length, r.ElfSize);
        Assert.Equal(TestElf.Pattern(0x30000, 1), mem.GetSpan(new GuestAddress(0x100_0000), 0x30000).ToArray());
        ulong zp = X86Layout.ZeroPageAddress;
        Assert.Equal(0x020F, U16(mem, zp + 0x206));          // version copied from the image
        Assert.Equal(255u, U32(mem, zp + 0x238));            // its cmdline_size
        Assert.Equal(0x3FF_FFFFu, U32(mem, zp + 0x22C));     // its initrd_addr_max
        Assert.Equal(0xFF, U8(mem, zp + 0x210));
        // initrd below the image's initrd_addr_max (64 MiB) instead of the top of RAM.
        Assert.True(r.InitrdAddress + r.InitrdSize <= 0x400_0000);
        Assert.True(r.InitrdAddress + r.InitrdSize > 0x400_0000 - 0x2000);
    }

    [Fact]
    public void BzImage_CmdlineLongerThanItsCmdlineSize_IsRejected()
    {
        byte[] bz = TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Gzip, TestElf.Kernel(pvh: true), out _),
            cmdlineSize: 20);
        using GuestMemory mem = Ram();
        var e = Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, bz, [], KernelCmdline.Default()));
        Assert.Contains("at most 20", e.Message);
    }

    [Fact]
    public void BzImage_InGuestDecompression_LoadsProtectedModeCodeAndEnters32Bit()
    {
        byte[] payload = KernelCompressors.Compress(PayloadCompression.Gzip, TestElf.Kernel(pvh: true), out _);
        byte[] bz = TestBzImage.Build(payload, initSize: 0x100_0000);
        using GuestMemory mem = Ram();
        LinuxBootResult r = LinuxBootLoader.Load(mem, bz, TestElf.Pattern(4096, 2), KernelCmdline.Default(),
            new BootOptions { InGuestDecompression = true });

        Assert.Equal(BootMethod.BzImage32, r.Method);
        Assert.Equal(0x10_0000ul, X86(r).Rip);
        Assert.Equal(X86Layout.ZeroPageAddress, X86(r).Rsi);
        Assert.Equal(0ul, X86(r).Rbx);
        Assert.Equal(0ul, X86(r).Rbp);
        Assert.Equal(0x11ul, X86(r).Cr0);
        Assert.Equal((ushort)0x10, X86(r).Code.Selector);
        Assert.True(X86(r).Code.DefaultBig);
        int setupSize = 5 * 512;
        Assert.Equal(bz.AsSpan(setupSize).ToArray(), mem.GetSpan(new GuestAddress(0x10_0000), (ulong)(bz.Length - setupSize)).ToArray());
        Assert.Equal(0x10_0000u, U32(mem, X86Layout.ZeroPageAddress + 0x214)); // code32_start
        // The decompressor works at pref_address (16 MiB) and needs init_size (16 MiB): the initrd stays above.
        Assert.Equal(0x200_0000ul, r.KernelEnd);
        Assert.True(r.InitrdAddress >= 0x200_0000);
    }

    [Fact]
    public void BzImage_InGuestDecompression_NotEnoughRamToDecompress()
    {
        byte[] bz = TestBzImage.Build(new byte[1000], initSize: 0x800_0000);
        using GuestMemory mem = Ram(64 * MiB);
        var e = Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, bz, [], KernelCmdline.Default(),
            new BootOptions { InGuestDecompression = true }));
        Assert.Contains("more memory", e.Message);
    }

    [Fact]
    public void BzImage_InGuestDecompression_HostilePrefAddress_DoesNotWrap()
    {
        byte[] bz = TestBzImage.Build(new byte[1000], initSize: 0x100_0000);
        BinaryPrimitives.WriteUInt64LittleEndian(bz.AsSpan(0x258), 0xFFFF_FFFF_FFFF_F000); // pref_address
        using GuestMemory mem = Ram();
        Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, bz, [], KernelCmdline.Default(),
            new BootOptions { InGuestDecompression = true }));
        bz[0x234] = 0; // not relocatable, pref_address 0: would decompress over the boot structures
        BinaryPrimitives.WriteUInt64LittleEndian(bz.AsSpan(0x258), 0);
        Assert.Throws<KernelImageException>(() => LinuxBootLoader.Load(mem, bz, [], KernelCmdline.Default(),
            new BootOptions { InGuestDecompression = true }));
    }

    [Fact]
    public void InitrdPlacement_IsHighestPageAlignedBelowTheLimits()
    {
        Assert.Equal(0x7FF_F000ul, LinuxBootLoader.PlaceInitrd(0x1000, 0x200_0000, 0x800_0000, 0x37FF_FFFF));
        Assert.Equal(0x7FF_E000ul, LinuxBootLoader.PlaceInitrd(0x1001, 0x200_0000, 0x800_0000, 0x37FF_FFFF));
        // initrd_addr_max is the highest byte address allowed.
        Assert.Equal(0x37FF_F000ul, LinuxBootLoader.PlaceInitrd(0x1000, 0x200_0000, 0xC000_0000, 0x37FF_FFFF));
        // Exactly fits above the kernel.
        Assert.Equal(0x200_0000ul, LinuxBootLoader.PlaceInitrd(0x600_0000, 0x1FF_F001, 0x800_0000, 0x37FF_FFFF));
        Assert.Throws<BootException>(() => LinuxBootLoader.PlaceInitrd(0x600_0001, 0x200_0000, 0x800_0000, 0x37FF_FFFF));
        Assert.Throws<BootException>(() => LinuxBootLoader.PlaceInitrd(0x900_0000, 0x200_0000, 0x800_0000, 0x37FF_FFFF));
    }

    [Fact]
    public void InitrdTooLarge_ForRam_IsABootException()
    {
        using GuestMemory mem = Ram(32 * MiB);
        var e = Assert.Throws<BootException>(() =>
            LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), new byte[16 * MiB], KernelCmdline.Default()));
        Assert.Contains("initrd", e.Message);
    }

    [Fact]
    public void KernelBeyondRam_IsABootException()
    {
        using GuestMemory mem = Ram(16 * MiB); // the kernel starts at 16 MiB
        var e = Assert.Throws<BootException>(() =>
            LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [], KernelCmdline.Default()));
        Assert.Contains("more memory", e.Message);
    }

    [Fact]
    public void RamNotStartingAtZero_IsABootException()
    {
        using GuestMemory mem = GuestMemory.CreateAnonymous((new GuestAddress(0x10_0000), 64 * MiB));
        Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [], KernelCmdline.Default()));
    }

    [Fact]
    public void HighRam_AppearsInTheMemoryMap_AndTheHoleDoesNot()
    {
        using GuestMemory mem = GuestMemory.CreateAnonymous(
            (new GuestAddress(0), X86Layout.MmioHoleStart), (new GuestAddress(X86Layout.FourGiB), 256 * MiB));
        E820Entry[] map = E820Map.Build(mem);
        Assert.Contains(new E820Entry(X86Layout.FourGiB, 256 * MiB, E820Type.Ram), map);
        Assert.Contains(new E820Entry(0x10_0000, X86Layout.MmioHoleStart - 0x10_0000, E820Type.Ram), map);
        foreach (E820Entry e in map)
        {
            bool overlapsHole = e.Address < X86Layout.FourGiB && e.End > X86Layout.MmioHoleStart;
            Assert.False(e.Type == E820Type.Ram && overlapsHole, $"RAM entry {e} overlaps the MMIO hole");
            Assert.False(e.Type == E820Type.Ram && e.Address < X86Layout.LowMemoryEnd && e.End > X86Layout.MpTableAddress,
                $"RAM entry {e} covers the MP table");
        }
    }

    [Fact]
    public void RamOverlappingTheMmioHole_IsRejected()
    {
        using GuestMemory mem = GuestMemory.CreateAnonymous((new GuestAddress(0), X86Layout.MmioHoleStart + 0x1000));
        Assert.Throws<BootException>(() => E820Map.Build(mem));
    }

    [Fact]
    public void LongCmdline_ForElf_IsAllowedUpTo64KiB_WithAWarning()
    {
        using GuestMemory mem = Ram();
        string line = "x=" + new string('y', 3000);
        LinuxBootResult r = LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [], KernelCmdline.Create(line));
        Assert.Single(r.Warnings);
        Assert.Equal(line, CmdlineAt(mem, X86Layout.CmdlineAddress));
        Assert.Throws<BootException>(() => LinuxBootLoader.Load(mem, TestElf.Kernel(pvh: true), [],
            KernelCmdline.Create(new string('z', KernelCmdline.MaxLength + 1))));
    }

    [Fact]
    public void RealKernel_FromVmmTestKernelDir_OrSynthetic()
    {
        string? dir = Environment.GetEnvironmentVariable("VMM_TEST_KERNEL_DIR");
        byte[] vmlinux, bzImage;
        if (dir is not null && File.Exists(Path.Combine(dir, "vmlinux")) && File.Exists(Path.Combine(dir, "bzImage")))
        {
            vmlinux = File.ReadAllBytes(Path.Combine(dir, "vmlinux"));
            bzImage = File.ReadAllBytes(Path.Combine(dir, "bzImage"));
            output.WriteLine($"using the real kernel in {dir}");
        }
        else
        {
            output.WriteLine("VMM_TEST_KERNEL_DIR is not set (or lacks vmlinux and bzImage): using a synthetic kernel");
            vmlinux = TestElf.Kernel(pvh: true);
            bzImage = TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Zstd, vmlinux, out _));
        }

        using GuestMemory fromElf = Ram(256 * MiB);
        using GuestMemory fromBz = Ram(256 * MiB);
        LinuxBootResult a = LinuxBootLoader.Load(fromElf, vmlinux, [], KernelCmdline.Default());
        LinuxBootResult b = LinuxBootLoader.Load(fromBz, bzImage, [], KernelCmdline.Default());
        output.WriteLine(a.Describe());
        output.WriteLine(b.Describe());

        // The bzImage payload is the same vmlinux (symbols stripped): same segments, same entry, same bytes in RAM.
        Assert.Equal(a.Method, b.Method);
        Assert.Equal(a.EntryPoint, b.EntryPoint);
        Assert.Equal(a.KernelStart, b.KernelStart);
        Assert.Equal(a.KernelEnd, b.KernelEnd);
        ulong length = a.KernelEnd - a.KernelStart;
        Assert.True(fromElf.GetSpan(new GuestAddress(a.KernelStart), length)
            .SequenceEqual(fromBz.GetSpan(new GuestAddress(b.KernelStart), length)));
    }

    private static X86BootCpuState X86(LinuxBootResult r) => Assert.IsType<X86BootCpuState>(r.Cpu);
}
