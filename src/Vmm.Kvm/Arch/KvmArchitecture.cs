using System.Runtime.InteropServices;
using Vmm.Core.Arch;
using Vmm.Kvm.Arch.Arm64;
using Vmm.Kvm.Arch.X86;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Arch;

/// <summary>
/// What differs between KVM on x86_64 and on arm64, in one place (after Firecracker's <c>arch/{x86_64,aarch64}</c>
/// and crosvm's <c>LinuxArch</c>): the capabilities to require, the VM's platform pieces (x86: TSS, identity map,
/// PIC/IOAPIC/LAPIC, PIT; arm64: the vCPUs, then the GICv3 and its ITS), interrupt lines and MSI routes, and how
/// vCPUs start. <see cref="KvmVm"/> and <see cref="KvmSystem"/> call it; nothing above the hypervisor layer sees it.
/// </summary>
internal abstract class KvmArchitecture
{
    /// <summary>The architecture this process runs on; KVM only runs guests of its host's architecture.</summary>
    public static KvmArchitecture Host { get; } = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => new X86KvmArchitecture(),
        Architecture.Arm64 => new Arm64KvmArchitecture(),
        _ => new UnsupportedKvmArchitecture(),
    };

    public abstract string Name { get; }

    /// <summary>Capabilities beyond the common ones that this architecture's VMs rely on.</summary>
    public abstract IReadOnlyList<(int Cap, string Name)> RequiredCapabilities { get; }

    /// <summary>The most vCPUs a VM can have, before KVM's own limit.</summary>
    public abstract int MaxCpus { get; }

    /// <summary>Sets up the VM's platform once its RAM is installed and before any device is built (devices
    /// allocate irqfds, which arm64 KVM accepts only once the vGIC is initialised, and that needs the vCPUs).</summary>
    public abstract void SetUpVm(KvmVm vm, int cpuCount);

    /// <summary>The GSI routes KVM_SET_GSI_ROUTING must keep besides the MSI routes.</summary>
    public abstract KvmIrqRoutingEntry[] DefaultRoutes { get; }

    /// <summary>Whether MSI routes carry the requester id (an ITS translates by device id; x86 has none).</summary>
    public abstract bool MsiRoutesCarryDeviceId { get; }

    /// <summary>How many wired interrupt lines devices can get (x86: IOAPIC pins; arm64: SPIs).</summary>
    public abstract int InterruptLines { get; }

    /// <summary>KVM_IRQ_LINE's irq field for wired line <paramref name="line"/>.</summary>
    public abstract uint KvmIrqFor(int line);

    /// <summary>The VM's vCPUs, configured and with the boot vCPU in <paramref name="boot"/>'s state; the caller
    /// owns and disposes them.</summary>
    public abstract KvmVcpu[] PrepareVcpus(KvmVm vm, BootCpuState boot, int cpuCount);

    /// <summary>One "return" instruction, the whole of the signal handler that kicks a vCPU thread out of KVM_RUN.</summary>
    public abstract ReadOnlySpan<byte> ReturnInstruction { get; }

    /// <summary>A crash report for <paramref name="vcpu"/> in this architecture's registers.</summary>
    public abstract Diagnostics.CrashReport CaptureCrash(KvmVcpu vcpu, string reason, string? details);

    private sealed class UnsupportedKvmArchitecture : KvmArchitecture
    {
        public override string Name => RuntimeInformation.ProcessArchitecture.ToString();
        public override IReadOnlyList<(int Cap, string Name)> RequiredCapabilities =>
            throw new KvmUnavailableException($"vmm runs VMs on x86_64 and arm64 hosts, not on {Name}");
        public override int MaxCpus => 0;
        public override void SetUpVm(KvmVm vm, int cpuCount) => throw new NotSupportedException();
        public override KvmIrqRoutingEntry[] DefaultRoutes => [];
        public override bool MsiRoutesCarryDeviceId => false;
        public override int InterruptLines => 0;
        public override uint KvmIrqFor(int line) => throw new NotSupportedException();
        public override KvmVcpu[] PrepareVcpus(KvmVm vm, BootCpuState boot, int cpuCount) => throw new NotSupportedException();
        public override ReadOnlySpan<byte> ReturnInstruction => throw new NotSupportedException();
        public override Diagnostics.CrashReport CaptureCrash(KvmVcpu vcpu, string reason, string? details) =>
            Diagnostics.CrashReport.WithoutRegisters(vcpu.Index, reason, details, "unsupported architecture");
    }
}
