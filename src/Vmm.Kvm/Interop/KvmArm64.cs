namespace Vmm.Kvm.Interop;

/// <summary>arm64 KVM constants (arch/arm64/include/uapi/asm/kvm.h and linux/kvm.h).</summary>
internal static class KvmArm64
{
    // kvm_vcpu_init.features bits.
    public const int FeaturePowerOff = 0, FeaturePsci02 = 2;

    // Register ids: KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset in struct kvm_regs / 4).
    private const ulong RegArm64 = 0x6000_0000_0000_0000, RegSizeU64 = 0x0030_0000_0000_0000, RegArmCore = 0x0010_0000;

    /// <summary>The ONE_REG id of the 64-bit core register at <paramref name="offset"/> bytes into struct kvm_regs.</summary>
    public static ulong CoreRegister(int offset) => RegArm64 | RegSizeU64 | RegArmCore | (uint)offset / 4;

    // struct kvm_regs starts with user_pt_regs: regs[31], sp, pc, pstate (8 bytes each).
    public static ulong X(int n) => CoreRegister(n * 8);
    public static readonly ulong Sp = CoreRegister(31 * 8), Pc = CoreRegister(32 * 8), Pstate = CoreRegister(33 * 8);

    // In-kernel devices and their attributes.
    public const uint DeviceTypeVgicV3 = 7, DeviceTypeVgicIts = 8;
    public const uint VgicGroupAddr = 0, VgicGroupNrIrqs = 3, VgicGroupCtrl = 4;
    public const ulong VgicV3AddrDist = 2, VgicV3AddrRedist = 3, VgicItsAddr = 4, VgicCtrlInit = 0;

    // KVM_IRQ_LINE's irq field on arm64: type in bits 24–27; an SPI's number is its INTID (32 + SPI index).
    public const uint IrqTypeSpi = 1, IrqTypeShift = 24, FirstSpiIntid = 32;
}
