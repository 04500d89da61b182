using Vmm.Core.Arch;
using Vmm.Core.Arch.X86;
using Vmm.Kvm.Diagnostics;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Arch.X86;

/// <summary>
/// KVM on x86_64: the TSS and identity-map pages, the in-kernel PIC/IOAPIC/LAPIC and PIT at VM creation; vCPUs made
/// at run time with CPUID, MSRs, FPU and LAPIC set up, the boot vCPU in the loader's state and the others waiting
/// for INIT/SIPI; GSIs 0–23 routed to the PIC and IOAPIC.
/// </summary>
internal sealed unsafe class X86KvmArchitecture : KvmArchitecture
{
    public const int IoapicPins = 24;

    private static readonly (int, string)[] Capabilities =
    [
        (KvmCaps.SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
        (KvmCaps.ExtCpuid, "KVM_CAP_EXT_CPUID"),
        (KvmCaps.Pit2, "KVM_CAP_PIT2"),
    ];

    public override string Name => "x86_64";

    public override IReadOnlyList<(int Cap, string Name)> RequiredCapabilities => Capabilities;

    /// <summary>8-bit APIC ids (the composer's MP table allows fewer).</summary>
    public override int MaxCpus => 255;

    public override void SetUpVm(KvmVm vm, int cpuCount)
    {
        vm.Handle.Ioctl(KvmIoctls.SetTssAddr, (nuint)X86Layout.KvmTssAddress, "KVM_SET_TSS_ADDR");
        ulong identityMap = X86Layout.KvmIdentityMapAddress;
        vm.Handle.Ioctl(KvmIoctls.SetIdentityMapAddr, &identityMap, "KVM_SET_IDENTITY_MAP_ADDR");
        vm.Handle.Ioctl(KvmIoctls.CreateIrqchip, 0, "KVM_CREATE_IRQCHIP");
        var pit = new KvmPitConfig { Flags = KvmConstants.PitSpeakerDummy };
        vm.Handle.Ioctl(KvmIoctls.CreatePit2, &pit, "KVM_CREATE_PIT2");
    }

    /// <summary>The kernel's default routes, which KVM_SET_GSI_ROUTING would otherwise drop: GSIs 0–15 to the PIC
    /// and the IOAPIC, 16–23 to the IOAPIC.</summary>
    public override KvmIrqRoutingEntry[] DefaultRoutes { get; } = CreateDefaultRoutes();

    public override bool MsiRoutesCarryDeviceId => false;

    public override int InterruptLines => IoapicPins;

    public override uint KvmIrqFor(int line) => (uint)line;

    public override KvmVcpu[] PrepareVcpus(KvmVm vm, BootCpuState boot, int cpuCount)
    {
        if (boot is not X86BootCpuState x86)
        {
            throw new ArgumentException($"an x86_64 VM cannot start from a {boot.GetType().Name}", nameof(boot));
        }
        var vcpus = new KvmVcpu[cpuCount];
        try
        {
            for (int i = 0; i < cpuCount; i++)
            {
                vcpus[i] = vm.CreateVcpu(i);
                vcpus[i].ConfigureCommon(cpuCount);
                if (i == 0)
                {
                    vcpus[i].ConfigureBoot(x86);
                }
                else
                {
                    vcpus[i].SetMpState(KvmConstants.MpStateUninitialized);
                }
            }
            return vcpus;
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

    /// <summary>ret (C3).</summary>
    public override ReadOnlySpan<byte> ReturnInstruction => [0xC3];

    public override CrashReport CaptureCrash(KvmVcpu vcpu, string reason, string? details) =>
        CrashReport.CaptureX86(vcpu, reason, details);

    private static KvmIrqRoutingEntry[] CreateDefaultRoutes()
    {
        var routes = new List<KvmIrqRoutingEntry>();
        for (uint gsi = 0; gsi < IoapicPins; gsi++)
        {
            if (gsi < 16)
            {
                routes.Add(IrqchipRoute(gsi, gsi < 8 ? KvmConstants.IrqchipPicMaster : KvmConstants.IrqchipPicSlave, gsi % 8));
            }
            routes.Add(IrqchipRoute(gsi, KvmConstants.IrqchipIoapic, gsi));
        }
        return routes.ToArray();
    }

    private static KvmIrqRoutingEntry IrqchipRoute(uint gsi, uint chip, uint pin) => new()
    {
        Gsi = gsi,
        Type = KvmConstants.IrqRoutingIrqchip,
        IrqchipId = chip,
        IrqchipPin = pin,
    };
}
