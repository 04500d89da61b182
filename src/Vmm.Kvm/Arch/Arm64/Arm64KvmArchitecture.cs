using System.Text;
using Vmm.Core.Arch;
using Vmm.Core.Arch.Arm64;
using Vmm.Kvm.Diagnostics;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Platform;

namespace Vmm.Kvm.Arch.Arm64;

/// <summary>
/// KVM on arm64: at VM creation the vCPUs (KVM_ARM_VCPU_INIT with the preferred target and PSCI 0.2; all but the
/// boot vCPU powered off, for the guest to start with PSCI CPU_ON), then the in-kernel GICv3 and its ITS at
/// <see cref="Arm64Layout"/>'s addresses, with the architected timer KVM provides. Wired lines are SPIs; MSIs reach
/// the ITS as routes that carry the PCI requester id. PSCI SYSTEM_OFF and SYSTEM_RESET come back as
/// KVM_EXIT_SYSTEM_EVENT, which the run loop already turns into a stop.
/// </summary>
internal sealed unsafe class Arm64KvmArchitecture : KvmArchitecture
{
    /// <summary>Interrupt ids the vGIC has: 32 private (SGIs and PPIs) and 224 SPIs.</summary>
    public const uint GicInterrupts = 256;

    private static readonly (int, string)[] Capabilities =
    [
        (KvmCaps.OneReg, "KVM_CAP_ONE_REG"),
        (KvmCaps.DeviceCtrl, "KVM_CAP_DEVICE_CTRL"),
        (KvmCaps.ArmPsci02, "KVM_CAP_ARM_PSCI_0_2"),
        // Not KVM_CAP_MSI_DEVID: KVM answers it only on a VM fd (EINVAL on /dev/kvm), and creating the ITS is what
        // makes MSIs need a device id.
    ];

    public override string Name => "arm64";

    public override IReadOnlyList<(int Cap, string Name)> RequiredCapabilities => Capabilities;

    public override int MaxCpus => Arm64Layout.MaxCpus;

    public override void SetUpVm(KvmVm vm, int cpuCount)
    {
        KvmVcpuInit target;
        vm.Handle.Ioctl(KvmIoctls.ArmPreferredTarget, &target, "KVM_ARM_PREFERRED_TARGET");
        var vcpus = new KvmVcpu[cpuCount];
        try
        {
            // The vGIC sizes its per-vCPU state at initialisation, so every vCPU exists before it.
            for (int i = 0; i < cpuCount; i++)
            {
                vcpus[i] = vm.CreateVcpu(i);
                vcpus[i].InitArm64(target, poweredOff: i != 0);
            }
            KvmDevice gic = vm.CreateDevice(KvmArm64.DeviceTypeVgicV3, "GICv3");
            gic.SetAddress(KvmArm64.VgicGroupAddr, KvmArm64.VgicV3AddrDist, Arm64Layout.GicDistributor, "distributor");
            gic.SetAddress(KvmArm64.VgicGroupAddr, KvmArm64.VgicV3AddrRedist, Arm64Layout.GicRedistributors, "redistributors");
            gic.SetUInt32(KvmArm64.VgicGroupNrIrqs, 0, GicInterrupts, "interrupt count");
            gic.SetAttribute(KvmArm64.VgicGroupCtrl, KvmArm64.VgicCtrlInit, 0, "init");
            // The ITS after the GIC's initialisation, as QEMU creates it; it turns MSI writes into LPIs.
            KvmDevice its = vm.CreateDevice(KvmArm64.DeviceTypeVgicIts, "ITS");
            its.SetAddress(KvmArm64.VgicGroupAddr, KvmArm64.VgicItsAddr, Arm64Layout.GicIts, "translation registers");
            its.SetAttribute(KvmArm64.VgicGroupCtrl, KvmArm64.VgicCtrlInit, 0, "init");
            vm.AdoptPreparedVcpus(vcpus);
        }
        catch
        {
            foreach (KvmVcpu? v in vcpus)
            {
                v?.Dispose();
            }
            throw;
        }
    }

    public override KvmIrqRoutingEntry[] DefaultRoutes => [];

    public override bool MsiRoutesCarryDeviceId => true;

    public override int InterruptLines => (int)(GicInterrupts - KvmArm64.FirstSpiIntid);

    public override uint KvmIrqFor(int line) =>
        KvmArm64.IrqTypeSpi << (int)KvmArm64.IrqTypeShift | (KvmArm64.FirstSpiIntid + (uint)line);

    public override KvmVcpu[] PrepareVcpus(KvmVm vm, BootCpuState boot, int cpuCount)
    {
        if (boot is not Arm64BootCpuState arm)
        {
            throw new ArgumentException($"an arm64 VM cannot start from a {boot.GetType().Name}", nameof(boot));
        }
        KvmVcpu[] vcpus = vm.TakePreparedVcpus();
        if (vcpus.Length != cpuCount)
        {
            foreach (KvmVcpu v in vcpus)
            {
                v.Dispose();
            }
            throw new ArgumentException($"the VM was created with {vcpus.Length} vCPU(s), not {cpuCount}", nameof(cpuCount));
        }
        vcpus[0].ConfigureArm64Boot(arm);
        return vcpus;
    }

    /// <summary>ret (D65F03C0, little-endian). arm64 Linux cleans the caches for a page when mprotect makes it
    /// executable, so the freshly written instruction is what the CPU fetches.</summary>
    public override ReadOnlySpan<byte> ReturnInstruction => [0xC0, 0x03, 0x5F, 0xD6];

    /// <summary>The general-purpose registers, SP, PC and PSTATE, read with KVM_GET_ONE_REG.</summary>
    public override CrashReport CaptureCrash(KvmVcpu vcpu, string reason, string? details)
    {
        try
        {
            var text = new StringBuilder();
            text.Append($"pc={vcpu.GetOneReg(KvmArm64.Pc):x16} pstate={vcpu.GetOneReg(KvmArm64.Pstate):x8} sp={vcpu.GetOneReg(KvmArm64.Sp):x16}");
            for (int i = 0; i < 31; i++)
            {
                text.Append(i % 4 == 0 ? "\n" : " ").Append($"x{i,-2}={vcpu.GetOneReg(KvmArm64.X(i)):x16}");
            }
            return new CrashReport { VcpuIndex = vcpu.Index, Reason = reason, Details = details, RegisterText = text.ToString() };
        }
        catch (KvmException e)
        {
            return CrashReport.WithoutRegisters(vcpu.Index, reason, details, e.Message);
        }
    }
}
