using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Tests;

/// <summary>Request numbers pinned to the values linux/kvm.h produces on x86_64 (printed by a C program against
/// /usr/include/linux/kvm.h, kernel headers of Debian's 6.12).</summary>
public class IoctlNumberTests
{
    public static TheoryData<string, ulong, ulong> Numbers => new()
    {
        { "KVM_GET_API_VERSION", KvmIoctls.GetApiVersion, 0xae00 },
        { "KVM_CREATE_VM", KvmIoctls.CreateVm, 0xae01 },
        { "KVM_GET_MSR_INDEX_LIST", KvmIoctls.GetMsrIndexList, 0xc004ae02 },
        { "KVM_CHECK_EXTENSION", KvmIoctls.CheckExtension, 0xae03 },
        { "KVM_GET_VCPU_MMAP_SIZE", KvmIoctls.GetVcpuMmapSize, 0xae04 },
        { "KVM_GET_SUPPORTED_CPUID", KvmIoctls.GetSupportedCpuid, 0xc008ae05 },
        { "KVM_CREATE_VCPU", KvmIoctls.CreateVcpu, 0xae41 },
        { "KVM_SET_USER_MEMORY_REGION", KvmIoctls.SetUserMemoryRegion, 0x4020ae46 },
        { "KVM_SET_TSS_ADDR", KvmIoctls.SetTssAddr, 0xae47 },
        { "KVM_SET_IDENTITY_MAP_ADDR", KvmIoctls.SetIdentityMapAddr, 0x4008ae48 },
        { "KVM_CREATE_IRQCHIP", KvmIoctls.CreateIrqchip, 0xae60 },
        { "KVM_IRQ_LINE", KvmIoctls.IrqLine, 0x4008ae61 },
        { "KVM_SET_GSI_ROUTING", KvmIoctls.SetGsiRouting, 0x4008ae6a },
        { "KVM_IRQFD", KvmIoctls.Irqfd, 0x4020ae76 },
        { "KVM_CREATE_PIT2", KvmIoctls.CreatePit2, 0x4040ae77 },
        { "KVM_IOEVENTFD", KvmIoctls.Ioeventfd, 0x4040ae79 },
        { "KVM_ENABLE_CAP", KvmIoctls.EnableCap, 0x4068aea3 },
        { "KVM_RUN", KvmIoctls.Run, 0xae80 },
        { "KVM_GET_REGS", KvmIoctls.GetRegs, 0x8090ae81 },
        { "KVM_SET_REGS", KvmIoctls.SetRegs, 0x4090ae82 },
        { "KVM_GET_SREGS", KvmIoctls.GetSregs, 0x8138ae83 },
        { "KVM_SET_SREGS", KvmIoctls.SetSregs, 0x4138ae84 },
        { "KVM_TRANSLATE", KvmIoctls.Translate, 0xc018ae85 },
        { "KVM_GET_MSRS", KvmIoctls.GetMsrs, 0xc008ae88 },
        { "KVM_SET_MSRS", KvmIoctls.SetMsrs, 0x4008ae89 },
        { "KVM_GET_FPU", KvmIoctls.GetFpu, 0x81a0ae8c },
        { "KVM_SET_FPU", KvmIoctls.SetFpu, 0x41a0ae8d },
        { "KVM_GET_LAPIC", KvmIoctls.GetLapic, 0x8400ae8e },
        { "KVM_SET_LAPIC", KvmIoctls.SetLapic, 0x4400ae8f },
        { "KVM_SET_CPUID2", KvmIoctls.SetCpuid2, 0x4008ae90 },
        { "KVM_GET_MP_STATE", KvmIoctls.GetMpState, 0x8004ae98 },
        { "KVM_SET_MP_STATE", KvmIoctls.SetMpState, 0x4004ae99 },
        { "KVM_GET_VCPU_EVENTS", KvmIoctls.GetVcpuEvents, 0x8040ae9f },
        { "KVM_SET_VCPU_EVENTS", KvmIoctls.SetVcpuEvents, 0x4040aea0 },
    };

    [Theory]
    [MemberData(nameof(Numbers))]
    public void RequestNumberMatchesKernel(string name, ulong actual, ulong expected) =>
        Assert.True(actual == expected, $"{name}: 0x{actual:x} != kernel 0x{expected:x}");

    [Fact]
    public void EncodingPlacesDirectionSizeTypeAndNumber()
    {
        Assert.Equal(0xC0FFAE12UL, (ulong)KvmIoctls.Iowr(0x12, 0xFF));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvmIoctls.Iow(1, 1 << 14));
    }
}
