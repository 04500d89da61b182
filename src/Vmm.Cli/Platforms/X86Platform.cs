using Vmm.Cli.Configuration;
using Vmm.Core.Arch.X86;
using Vmm.Core.Boot;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Devices.Legacy.DebugExit;
using Vmm.Devices.Legacy.I8042;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Pci;
using Vmm.Kvm;

namespace Vmm.Cli.Platforms;

/// <summary>The x86_64 machine: RAM from 0 with the 32-bit PCI hole, the bzImage/vmlinux/PVH loader, COM1 (16550)
/// as the console, the i8042 for reset, the debug-exit port, PCI through port 0xCF8 and ECAM, and the MP table.</summary>
internal sealed class X86Platform : MachinePlatform
{
    private static readonly (string, string)[] Implied = [("reboot", "k"), ("panic", "-1")];

    public override KernelArchitecture Architecture => KernelArchitecture.X86_64;

    public override string Name => "x86_64";

    public override int MaxCpus => MpTable.MaxCpus;

    public override string SerialConsoleName => "ttyS0";

    public override string DefaultUserParameters => KernelCmdline.DefaultUserParameters;

    /// <summary>Reset through the i8042 (a clean exit) and reboot on panic.</summary>
    public override IReadOnlyList<(string Key, string Value)> ImpliedParameters => Implied;

    public override (ulong Start, ulong Size)[] RamRegions(ulong bytes) => X86Layout.RamRegions(bytes);

    public override LinuxBootResult LoadKernel(GuestMemory memory, byte[] kernel, byte[] initrd, KernelCmdline cmdline, VmConfig config) =>
        LinuxBootLoader.Load(memory, kernel, initrd, cmdline, VmLauncher.BootOptionsFor(config.Boot));

    public override ConsoleUart AddPlatformDevices(KvmVm vm, IoBus pioBus, IoBus mmioBus, Stream consoleOut, List<IDisposable> owned)
    {
        var uart = new Uart16550(vm.InterruptLine(X86Layout.Com1Irq), consoleOut);
        owned.Add(uart);
        pioBus.Insert(uart, X86Layout.Com1Port, Uart16550.PortCount);
        pioBus.Insert(new I8042Device(vm.Control), X86Layout.I8042Port, I8042Device.PortCount);
        pioBus.Insert(new DebugExitDevice(vm.Control), X86Layout.DebugExitPort, DebugExitDevice.PortCount);
        return uart;
    }

    public override PciRoot CreatePciRoot(KvmVm vm, IoBus mmioBus, ulong ramSize) =>
        PciRoot.CreateX86(mmioBus, ramSize, gsi => vm.InterruptLine(gsi));

    public override void AttachPci(PciRoot pci, IoBus pioBus, IoBus mmioBus) => pci.AttachTo(pioBus, mmioBus);

    /// <summary>The MP table: CPUs, the IOAPIC, and each PCI slot's INTA# route (used only by a guest that does not
    /// enable MSI-X).</summary>
    public override void WriteFirmwareTables(GuestMemory memory, int cpus, IReadOnlyList<int> pciSlots)
    {
        var intx = new MpPciInterrupt[pciSlots.Count];
        for (int i = 0; i < intx.Length; i++)
        {
            intx[i] = new MpPciInterrupt((byte)pciSlots[i], 1, (byte)PciRoot.IntxGsiForSlot(pciSlots[i]));
        }
        MpTable.Write(memory, cpus, intx);
    }
}
