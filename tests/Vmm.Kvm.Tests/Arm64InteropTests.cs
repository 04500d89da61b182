using Vmm.Kvm.Arch.Arm64;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Tests;

/// <summary>The arm64 KVM interface pinned to the values Debian's arm64 kernel headers give (linux-libc-dev-arm64-cross,
/// 6.12: a C program built with aarch64-linux-gnu-gcc printed them under qemu-aarch64): request numbers, struct
/// sizes, ONE_REG register ids, device and attribute numbers, and the KVM_IRQ_LINE encoding of an SPI. They run on
/// any host, so an x86_64 machine checks the arm64 port's interop too.</summary>
public unsafe class Arm64InteropTests
{
    public static TheoryData<string, ulong, ulong> Numbers => new()
    {
        { "KVM_ARM_VCPU_INIT", KvmIoctls.ArmVcpuInit, 0x4020aeae },
        { "KVM_ARM_PREFERRED_TARGET", KvmIoctls.ArmPreferredTarget, 0x8020aeaf },
        { "KVM_GET_ONE_REG", KvmIoctls.GetOneReg, 0x4010aeab },
        { "KVM_SET_ONE_REG", KvmIoctls.SetOneReg, 0x4010aeac },
        { "KVM_CREATE_DEVICE", KvmIoctls.CreateDevice, 0xc00caee0 },
        { "KVM_SET_DEVICE_ATTR", KvmIoctls.SetDeviceAttr, 0x4018aee1 },
    };

    [Theory]
    [MemberData(nameof(Numbers))]
    public void RequestNumberMatchesKernel(string name, ulong actual, ulong expected) =>
        Assert.True(actual == expected, $"{name}: 0x{actual:x} != kernel 0x{expected:x}");

    [Fact]
    public void SizesMatchKernel()
    {
        Assert.Equal(32, sizeof(KvmVcpuInit));
        Assert.Equal(16, sizeof(KvmOneReg));
        Assert.Equal(12, sizeof(KvmCreateDevice));
        Assert.Equal(24, sizeof(KvmDeviceAttr));
        Assert.Equal(8, sizeof(KvmIrqLevel));
        Assert.Equal(48, sizeof(KvmIrqRoutingEntry));
    }

    [Fact]
    public void CoreRegisterIdsMatchKernel()
    {
        Assert.Equal(0x6030000000100000UL, KvmArm64.X(0));
        Assert.Equal(0x6030000000100002UL, KvmArm64.X(1));
        Assert.Equal(0x603000000010003eUL, KvmArm64.Sp);
        Assert.Equal(0x6030000000100040UL, KvmArm64.Pc);
        Assert.Equal(0x6030000000100042UL, KvmArm64.Pstate);
    }

    [Fact]
    public void DeviceAndCapabilityNumbersMatchKernel()
    {
        Assert.Equal((7u, 8u), (KvmArm64.DeviceTypeVgicV3, KvmArm64.DeviceTypeVgicIts));
        Assert.Equal((0u, 3u, 4u), (KvmArm64.VgicGroupAddr, KvmArm64.VgicGroupNrIrqs, KvmArm64.VgicGroupCtrl));
        Assert.Equal((2UL, 3UL, 4UL, 0UL), (KvmArm64.VgicV3AddrDist, KvmArm64.VgicV3AddrRedist, KvmArm64.VgicItsAddr, KvmArm64.VgicCtrlInit));
        Assert.Equal((102, 131), (KvmCaps.ArmPsci02, KvmCaps.MsiDevid));
    }

    [Fact]
    public void AnSpiIsEncodedWithItsTypeAndInterruptId()
    {
        var arch = new Arm64KvmArchitecture();
        // KVM_ARM_IRQ_TYPE_SPI (1) in bits 24-27, INTID 32 + SPI in bits 0-15: the PL011's SPI 1 is INTID 33.
        Assert.Equal(0x0100_0021u, arch.KvmIrqFor(1));
        Assert.Equal(224, arch.InterruptLines);
        Assert.True(arch.MsiRoutesCarryDeviceId);
        Assert.Empty(arch.DefaultRoutes);
    }

    [Fact]
    public void TheKickHandlerIsOneReturnInstructionOfEachArchitecture()
    {
        // arm64 RET (x30) is 0xD65F03C0, stored little-endian; x86-64 RET is C3.
        Assert.Equal(0xD65F03C0u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(new Arm64KvmArchitecture().ReturnInstruction));
        Assert.Equal([0xC3], new Vmm.Kvm.Arch.X86.X86KvmArchitecture().ReturnInstruction.ToArray());
    }
}
