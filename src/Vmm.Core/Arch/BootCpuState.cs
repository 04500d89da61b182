namespace Vmm.Core.Arch;

/// <summary>
/// The register state a kernel loader leaves for the boot vCPU, applied by the hypervisor layer. Each architecture
/// has its own (<see cref="X86.X86BootCpuState"/>, <see cref="Arm64.Arm64BootCpuState"/>); the hypervisor layer
/// accepts only its own architecture's.
/// </summary>
public abstract record BootCpuState
{
    /// <summary>Human-readable entry kind for logs ("PVH 32-bit", "64-bit boot protocol", "arm64 Image").</summary>
    public string EntryKind { get; init; } = "";
}
