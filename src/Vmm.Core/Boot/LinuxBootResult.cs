using Vmm.Core.Arch;

namespace Vmm.Core.Boot;

/// <summary>Everything <see cref="LinuxBootLoader.Load"/> did: the vCPU state to apply, and figures for the log.</summary>
public sealed record LinuxBootResult
{
    /// <summary>The boot vCPU's initial registers (the hypervisor layer applies them).</summary>
    public required BootCpuState Cpu { get; init; }
    public required KernelImageKind ImageKind { get; init; }
    public required BootMethod Method { get; init; }
    /// <summary>Payload compression for a bzImage whose payload we extracted; null otherwise.</summary>
    public PayloadCompression? Compression { get; init; }
    /// <summary>Physical range the kernel occupies (for BzImage32: up to where it decompresses itself).</summary>
    public required ulong KernelStart { get; init; }
    public required ulong KernelEnd { get; init; }
    public required ulong EntryPoint { get; init; }
    public ulong InitrdAddress { get; init; }
    public ulong InitrdSize { get; init; }
    /// <summary>Command line as written (without NUL).</summary>
    public required string Cmdline { get; init; }
    public required long KernelFileSize { get; init; }
    /// <summary>Size of the vmlinux ELF after payload extraction (equals the file size for an ELF file; 0 for BzImage32).</summary>
    public long ElfSize { get; init; }
    public TimeSpan DecompressTime { get; init; }
    public required TimeSpan TotalTime { get; init; }
    /// <summary>Things that will probably work but deserve a log line (e.g. a command line the kernel may truncate).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>One log line summarising the boot setup.</summary>
    public string Describe()
    {
        string image = ImageKind == KernelImageKind.BzImage && Compression is { } c
            ? $"bzImage ({c} payload, {KernelFileSize} -> {ElfSize} bytes in {DecompressTime.TotalMilliseconds:F0} ms)"
            : $"{ImageKind} ({KernelFileSize} bytes)";
        string initrd = InitrdSize != 0 ? $", initrd {InitrdSize} bytes at 0x{InitrdAddress:x}" : "";
        return $"kernel: {image}, {Cpu.EntryKind} entry at 0x{EntryPoint:x}, loaded 0x{KernelStart:x}-0x{KernelEnd:x}{initrd}, " +
               $"cmdline {System.Text.Encoding.UTF8.GetByteCount(Cmdline)} bytes, setup {TotalTime.TotalMilliseconds:F0} ms";
    }
}
