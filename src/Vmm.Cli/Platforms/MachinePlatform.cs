using Vmm.Cli.Configuration;
using Vmm.Core.Boot;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Pci;
using Vmm.Kvm;

namespace Vmm.Cli.Platforms;

/// <summary>
/// What a machine of one architecture is made of, for <see cref="Machine"/> to compose (the CLI's half of the
/// architecture seam; the hypervisor's half is inside <c>Vmm.Kvm</c>): the guest RAM layout, the kernel loader and
/// the command line it needs, the platform devices and console UART, the PCI host's windows and configuration
/// mechanisms, and the firmware tables (the MP table on x86; on arm64 the device tree, written with the kernel).
/// </summary>
internal abstract class MachinePlatform
{
    /// <summary>The platform of the guests this host's KVM runs.</summary>
    public static MachinePlatform For(KvmSystem kvm) => kvm.ArchitectureName switch
    {
        "arm64" => new Arm64Platform(),
        _ => new X86Platform(),
    };

    public abstract KernelArchitecture Architecture { get; }

    /// <summary>The architecture as users write it ("x86_64", "arm64").</summary>
    public abstract string Name { get; }

    /// <summary>The most vCPUs this platform's firmware tables describe.</summary>
    public abstract int MaxCpus { get; }

    /// <summary>The console device's name in the guest (ttyS0, ttyAMA0).</summary>
    public abstract string SerialConsoleName { get; }

    /// <summary>The user part of the command line when the user gives none.</summary>
    public abstract string DefaultUserParameters { get; }

    /// <summary>Parameters the VMM's devices rely on, added to a user's command line unless it sets them.</summary>
    public abstract IReadOnlyList<(string Key, string Value)> ImpliedParameters { get; }

    /// <summary>Guest RAM of <paramref name="bytes"/> as this architecture lays it out.</summary>
    public abstract (ulong Start, ulong Size)[] RamRegions(ulong bytes);

    /// <summary>Loads kernel, initrd and command line (and, on arm64, the device tree) into guest RAM.</summary>
    public abstract LinuxBootResult LoadKernel(GuestMemory memory, byte[] kernel, byte[] initrd, KernelCmdline cmdline, VmConfig config);

    /// <summary>The UART that is the console and the other fixed devices; returns the console UART.</summary>
    public abstract ConsoleUart AddPlatformDevices(KvmVm vm, IoBus pioBus, IoBus mmioBus, Stream consoleOut, List<IDisposable> owned);

    /// <summary>The PCI host with this platform's BAR windows and wired interrupts (x86 only).</summary>
    public abstract PciRoot CreatePciRoot(KvmVm vm, IoBus mmioBus, ulong ramSize);

    /// <summary>Registers the configuration mechanisms (x86: port 0xCF8 and ECAM; arm64: ECAM).</summary>
    public abstract void AttachPci(PciRoot pci, IoBus pioBus, IoBus mmioBus);

    /// <summary>Tables the guest finds its CPUs and interrupt routes in, once every device is in place.</summary>
    public abstract void WriteFirmwareTables(GuestMemory memory, int cpus, IReadOnlyList<int> pciSlots);
}
