using Vmm.Core.Arch.Arm64;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm;

/// <summary>The arm64 side of a vCPU: KVM_ARM_VCPU_INIT and registers through KVM_GET/SET_ONE_REG.</summary>
public sealed unsafe partial class KvmVcpu
{
    /// <summary>KVM_ARM_VCPU_INIT with the preferred <paramref name="target"/>, PSCI 0.2 and, for every vCPU but the
    /// boot one, powered off (the guest starts it with PSCI CPU_ON).</summary>
    internal void InitArm64(KvmVcpuInit target, bool poweredOff)
    {
        KvmVcpuInit init = target;
        init.Features[0] |= 1u << KvmArm64.FeaturePsci02;
        if (poweredOff)
        {
            init.Features[0] |= 1u << KvmArm64.FeaturePowerOff;
        }
        _fd.Ioctl(KvmIoctls.ArmVcpuInit, &init, $"KVM_ARM_VCPU_INIT(vCPU {Index})");
    }

    public ulong GetOneReg(ulong id)
    {
        ulong value;
        var reg = new KvmOneReg { Id = id, Addr = (ulong)&value };
        _fd.Ioctl(KvmIoctls.GetOneReg, &reg, $"KVM_GET_ONE_REG(0x{id:x})");
        return value;
    }

    public void SetOneReg(ulong id, ulong value)
    {
        // Safe: the kernel reads 8 bytes (the id's size field says U64) from a local that outlives the call.
        var reg = new KvmOneReg { Id = id, Addr = (ulong)&value };
        _fd.Ioctl(KvmIoctls.SetOneReg, &reg, $"KVM_SET_ONE_REG(0x{id:x})");
    }

    /// <summary>The boot vCPU's registers for the arm64 boot protocol: PC at the kernel, x0 the device tree,
    /// x1–x3 zero, EL1h with exceptions masked (KVM's reset state already has the MMU and caches off).</summary>
    internal void ConfigureArm64Boot(Arm64BootCpuState boot)
    {
        SetOneReg(KvmArm64.Pstate, Arm64BootCpuState.BootPstate);
        SetOneReg(KvmArm64.Pc, boot.Pc);
        SetOneReg(KvmArm64.X(0), boot.DeviceTree);
        for (int i = 1; i <= 3; i++)
        {
            SetOneReg(KvmArm64.X(i), 0);
        }
    }
}
