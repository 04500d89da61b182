namespace Vmm.Core.Boot;

/// <summary>How the boot vCPU enters the kernel.</summary>
public enum BootEntry
{
    /// <summary>PVH when the ELF has the Xen PVH note, else the 64-bit boot protocol.</summary>
    Auto,
    /// <summary>PVH: 32-bit flat protected mode, paging off, EBX = hvm_start_info. Needs the PVH note.</summary>
    Pvh,
    /// <summary>64-bit boot protocol: long mode, identity map of 1 GiB, RSI = boot_params (as Firecracker).</summary>
    Linux64,
}

/// <summary>Options for <see cref="LinuxBootLoader.Load"/>.</summary>
public sealed record BootOptions
{
    public BootEntry Entry { get; init; } = BootEntry.Auto;

    /// <summary>
    /// Boot a bzImage the classic way: load its protected-mode code at code32_start and enter it through the 32-bit
    /// boot protocol, so the kernel decompresses itself. Slow on a PVM host (the decompressor runs at emulator speed,
    /// see docs/host-kvm.md); fine on VMX/SVM hosts. Ignored for ELF kernels; <see cref="Entry"/> must be Auto.
    /// </summary>
    public bool InGuestDecompression { get; init; }

    /// <summary>Cap on the decompressed kernel (decompression-bomb guard).</summary>
    public ulong MaxUncompressedKernelSize { get; init; } = PayloadDecompressor.DefaultMaxUncompressedSize;
}

/// <summary>What kind of file the kernel was.</summary>
public enum KernelImageKind
{
    /// <summary>An ELF64 x86_64 vmlinux.</summary>
    Elf,
    /// <summary>A bzImage (x86 boot protocol setup header + compressed payload).</summary>
    BzImage,
    /// <summary>A Linux arm64 <c>Image</c>, plain or gzip-compressed (Debian's arm64 <c>vmlinuz</c>).</summary>
    Arm64Image,
}

/// <summary>How the kernel is entered.</summary>
public enum BootMethod
{
    Pvh,
    Linux64,
    /// <summary>bzImage through the 32-bit boot protocol, decompressing itself in the guest.</summary>
    BzImage32,
    /// <summary>The arm64 boot protocol: MMU off, x0 = the device tree's address.</summary>
    Arm64,
}
