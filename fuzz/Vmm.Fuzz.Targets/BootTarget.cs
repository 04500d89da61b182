using System.Text;
using Vmm.Cli;
using Vmm.Cli.Configuration;
using Vmm.Core.Boot;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends;

namespace Vmm.Fuzz.Targets;

/// <summary>
/// The files and text the user hands the VMM. The first byte picks the parser: 0 the whole kernel load (ELF or
/// bzImage, PVH note, payload extraction, initrd placement, command line) into a 16 MiB guest, or, for a file that
/// is an arm64 kernel, the arm64 load (Image, gzip or zboot payload, initrd and device tree) into 16 MiB at 1 GiB; 1 the payload
/// decompressors; 2 the ELF parser alone; 3 the kernel command line builder; 4 initrd placement arithmetic and the
/// bzImage header; 5 <c>vmm run</c> flags (NUL-separated); 6 a JSON config file; 7 a <c>--media</c> spec.
/// <para>Findings: any exception other than the documented bad-input ones (<see cref="KernelImageException"/>,
/// <see cref="BootException"/>; <see cref="UsageException"/> for flags and config files); an initrd placed over the
/// kernel, past its limit or unaligned.</para>
/// </summary>
public static class BootTarget
{
    private const ulong RamSize = 16UL << 20;
    private const ulong MaxKernel = 8UL << 20;

    private static readonly GuestMemory Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), RamSize));
    private static readonly GuestMemory Arm64Memory =
        GuestMemory.CreateAnonymous((new GuestAddress(Vmm.Core.Arch.Arm64.Arm64Layout.RamStart), RamSize));
    private static readonly byte[] InitrdBytes = new byte[RamSize];
    private static readonly Lazy<string> ConfigDirectory = new(CreateConfigDirectory);

    public static void Run(ReadOnlySpan<byte> data)
    {
        var input = new FuzzInput(data);
        try
        {
            switch (input.U8() % 8)
            {
                case 0:
                    LoadKernel(ref input);
                    break;
                case 1:
                    PayloadDecompressor.Decompress(input.Rest(), out _, MaxKernel);
                    break;
                case 2:
                {
                    ReadOnlySpan<byte> file = input.Rest();
                    ElfKernel elf = ElfKernel.Parse(file);
                    elf.ContainsPhysical(elf.PhysicalEntry());
                    elf.Load(file, Memory);
                    break;
                }
                case 3:
                    Cmdline(ref input);
                    break;
                case 4:
                    Placement(ref input);
                    break;
                case 5:
                    CommandLine(ref input);
                    break;
                case 6:
                    ConfigFileText(ref input);
                    break;
                default:
                    MediaBackendSpecs.TryParse(Text(input.Rest()), out _, out _);
                    break;
            }
        }
        catch (Exception e) when (e is KernelImageException or BootException or UsageException)
        {
            // Rejected input, reported to the user as one line: the designed outcome.
        }
    }

    private static string Text(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    private static void LoadKernel(ref FuzzInput input)
    {
        byte flags = input.U8();
        var options = new BootOptions
        {
            Entry = (BootEntry)(flags % 3),
            InGuestDecompression = (flags & 4) != 0,
            MaxUncompressedKernelSize = MaxKernel,
        };
        // Initrd sizes up to all of RAM, in 4 KiB steps plus a tail, so placement meets both ends.
        int initrd = (int)Math.Min(RamSize, (ulong)input.U16() * 256 + input.U8());
        string? cmdline = (flags & 8) != 0 ? Text(input.Field(4096)) : null;
        ReadOnlySpan<byte> kernel = input.Rest();
        if (KernelFiles.DetectArchitecture(kernel) == KernelArchitecture.Arm64)
        {
            LoadArm64Kernel(kernel, initrd, cmdline, cpus: 1 + flags % 8);
            return;
        }
        LinuxBootResult result = LinuxBootLoader.Load(Memory, kernel, InitrdBytes.AsSpan(0, initrd), KernelCmdline.Create(cmdline), options);
        if (initrd > 0 && (result.InitrdAddress < result.KernelEnd || result.InitrdAddress + (ulong)initrd > RamSize))
        {
            throw new FuzzInvariantException(
                $"initrd of {initrd} bytes placed at 0x{result.InitrdAddress:x}, kernel ends at 0x{result.KernelEnd:x}, RAM at 0x{RamSize:x}");
        }
        _ = result.Describe();
    }

    private static void LoadArm64Kernel(ReadOnlySpan<byte> kernel, int initrd, string? cmdline, int cpus)
    {
        LinuxBootResult result = Arm64BootLoader.Load(Arm64Memory, kernel, InitrdBytes.AsSpan(0, initrd),
            KernelCmdline.Create(cmdline ?? KernelCmdline.Arm64DefaultUserParameters), cpus, MaxKernel);
        var cpu = (Vmm.Core.Arch.Arm64.Arm64BootCpuState)result.Cpu;
        ulong ramEnd = Vmm.Core.Arch.Arm64.Arm64Layout.RamStart + RamSize;
        if (cpu.DeviceTree + Arm64BootLoader.DeviceTreeMaxSize > ramEnd || result.KernelEnd > cpu.DeviceTree ||
            (initrd > 0 && (result.InitrdAddress < result.KernelEnd || result.InitrdAddress + (ulong)initrd > cpu.DeviceTree)))
        {
            throw new FuzzInvariantException(
                $"arm64 layout overlaps: kernel 0x{result.KernelStart:x}-0x{result.KernelEnd:x}, initrd {initrd} bytes at 0x{result.InitrdAddress:x}, device tree at 0x{cpu.DeviceTree:x}");
        }
        _ = result.Describe();
    }

    private static void Cmdline(ref FuzzInput input)
    {
        byte flags = input.U8();
        KernelCmdline line = KernelCmdline.Create((flags & 1) != 0 ? null : Text(input.Field(2048)));
        if ((flags & 2) != 0)
        {
            line = line.AddVmmParameters(Text(input.Field(256)));
        }
        if ((flags & 4) != 0)
        {
            line = line.AddVmmParameter(Text(input.Field(64)), Text(input.Field(64)));
        }
        line.Contains(Text(input.Field(64)));
        byte[] bytes = line.ToBytes(input.U16());
        if (bytes.Length == 0 || bytes[^1] != 0)
        {
            throw new FuzzInvariantException("the command line bytes are not NUL-terminated");
        }
        _ = line.ToString();
    }

    private static void Placement(ref FuzzInput input)
    {
        // Physical addresses are at most 52 bits; the loader only passes kernel ends inside guest RAM.
        const ulong PhysicalMask = (1UL << 52) - 1;
        ulong size = input.U64() & PhysicalMask;
        ulong kernelEnd = input.U64() & PhysicalMask;
        ulong regionEnd = input.U64() & PhysicalMask;
        ulong addrMax = input.U64();
        try
        {
            ulong at = LinuxBootLoader.PlaceInitrd(size, kernelEnd, regionEnd, addrMax);
            ulong limit = addrMax == ulong.MaxValue ? regionEnd : Math.Min(regionEnd, addrMax + 1);
            if ((at & 0xFFF) != 0 || at < kernelEnd || at + size > limit)
            {
                throw new FuzzInvariantException($"initrd of 0x{size:x} bytes placed at 0x{at:x} (kernel end 0x{kernelEnd:x}, limit 0x{limit:x})");
            }
        }
        catch (BootException)
        {
        }
        ReadOnlySpan<byte> file = input.Rest();
        if (BzImageHeader.HasSignature(file))
        {
            BzImageHeader header = BzImageHeader.Parse(file);
            _ = header.Payload(file).Length + header.ProtectedModeCode(file).Length + header.RawHeader(file).Length;
        }
    }

    private static void CommandLine(ref FuzzInput input)
    {
        string[] args = Text(input.Rest()).Split('\0');
        VmmCommandLine.ParseRunConfig(args);
    }

    /// <summary>The config text goes to a file next to an existing kernel "k" and initrd "i", so relative paths
    /// in it resolve and validation goes past the file checks.</summary>
    private static void ConfigFileText(ref FuzzInput input)
    {
        string path = Path.Combine(ConfigDirectory.Value, "vm.json");
        File.WriteAllBytes(path, input.Rest().ToArray());
        VmmCommandLine.ParseRunConfig("--config", path);
    }

    private static string CreateConfigDirectory()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmm-fuzz-boot-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "k"), [0x7F, (byte)'E', (byte)'L', (byte)'F']);
        File.WriteAllBytes(Path.Combine(dir, "i"), [0]);
        return dir;
    }
}
