namespace Vmm.Core.Arch.Arm64;

/// <summary>
/// The arm64 boot vCPU's state (Documentation/arch/arm64/booting.rst): EL1h with D, A, I and F masked, MMU and caches
/// off (KVM's reset state), PC at the kernel's first byte and x0 = the device tree's physical address; x1–x3 are 0.
/// The other vCPUs start powered off and are brought up by the guest through PSCI CPU_ON.
/// </summary>
public sealed record Arm64BootCpuState : BootCpuState
{
    /// <summary>PSTATE: EL1 with SP_EL1 (EL1h) and the D, A, I and F exception masks set.</summary>
    public const ulong BootPstate = 0x3C5;

    public required ulong Pc { get; init; }

    /// <summary>The flattened device tree's guest-physical address, passed in x0.</summary>
    public required ulong DeviceTree { get; init; }
}
