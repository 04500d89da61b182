using Vmm.Kvm.Cpu;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm;

/// <summary>What the VMM does about a guest instruction KVM failed to emulate.</summary>
public enum EmulationRepair
{
    /// <summary>Not repairable: the VM stops with diagnostics.</summary>
    None,
    /// <summary>Skip the one-byte instruction (<c>fwait</c>, 9B) and carry on.</summary>
    SkipInstruction,
    /// <summary>Skip the one-byte <c>int3</c> (CC) and inject #BP (vector 3), as the CPU would have.</summary>
    SkipAndInjectBreakpoint,
}

/// <summary>
/// Everything host-specific in one place. On an ordinary VMX/SVM host the profile changes nothing. On the
/// software "PVM" KVM (detected by <c>/sys/module/kvm_pvm</c> with a registered KVM device; see docs/host-kvm.md) it hides CX16, asks the guest
/// kernel to switch off features CPUID cannot hide, and repairs the two instructions whose emulation fails
/// at CPL0 but whose effect the VMM can reproduce (int3, fwait).
/// </summary>
public sealed class HostProfile
{

    private HostProfile(bool isPvm) => IsPvm = isPvm;

    /// <summary>An ordinary VMX/SVM host.</summary>
    public static HostProfile Standard { get; } = new(false);

    /// <summary>The software PVM KVM.</summary>
    public static HostProfile Pvm { get; } = new(true);

    public bool IsPvm { get; }

    /// <summary>One line for the log.</summary>
    public string Description => IsPvm
        ? "PVM software KVM (/sys/module/kvm_pvm): CPL0 guest code is emulated; hiding CX16, repairing int3/fwait"
        : "hardware-assisted KVM (no host-specific handling)";

    /// <summary>Kernel command-line words the guest needs on this host ("" when none).</summary>
    public string GuestCommandLineAdditions => IsPvm
        ? "noxsave clearcpuid=popcnt,smap,erms,fsrm,fsgsbase,clwb rodata=off"
        : "";

    /// <summary>
    /// Picks the profile for this machine: PVM when the kvm_pvm module is loaded and a KVM device is registered.
    /// The module alone proves nothing: machines have been seen with kvm_pvm loaded and no /dev/kvm at all.
    /// </summary>
    public static HostProfile Detect(string sysfsRoot = "/sys") =>
        Directory.Exists(Path.Combine(sysfsRoot, "module/kvm_pvm")) && Directory.Exists(Path.Combine(sysfsRoot, "class/misc/kvm"))
            ? Pvm
            : Standard;

    /// <summary>
    /// Whether the registers read after a triple fault (KVM_EXIT_SHUTDOWN) are the guest's. On AMD SVM, KVM treats
    /// the VMCB as undefined after a SHUTDOWN intercept and INITs the vCPU before returning (svm.c,
    /// shutdown_interception), so what can be read is the reset state; Intel VMX and PVM leave the state as it
    /// was at the fault.
    /// </summary>
    public bool KeepsRegistersAfterShutdown(CpuVendor vendor) => IsPvm || vendor is not (CpuVendor.Amd or CpuVendor.Hygon);

    /// <summary>Host-specific CPUID edits, applied after the generic rules.</summary>
    public void ApplyCpuidRules(Span<KvmCpuidEntry2> entries)
    {
        if (!IsPvm)
        {
            return;
        }
        foreach (ref KvmCpuidEntry2 e in entries)
        {
            if (e.Function == 1)
            {
                // CX16 is one of the few leaf-1 bits PVM honours, and cmpxchg16b fails to emulate at CPL0.
                e.Ecx &= ~(1u << 13);
            }
        }
    }

    /// <summary>Whether MSR <paramref name="index"/> may be written at vCPU setup on this host.</summary>
    public static bool IsMsrWritable(uint index) =>
        // IA32_ARCH_CAPABILITIES: PVM refuses it, and nothing in a fresh VM needs it on any host.
        index != 0x10A;

    /// <summary>The repair for a failed emulation of an instruction starting with <paramref name="instruction"/>.</summary>
    public EmulationRepair ChooseRepair(ReadOnlySpan<byte> instruction)
    {
        if (!IsPvm || instruction.IsEmpty)
        {
            return EmulationRepair.None;
        }
        return instruction[0] switch
        {
            0xCC => EmulationRepair.SkipAndInjectBreakpoint,
            0x9B => EmulationRepair.SkipInstruction,
            _ => EmulationRepair.None,
        };
    }
}
