using Vmm.Cli.Configuration;
using Vmm.Core.Arch.Arm64;
using Vmm.Core.Boot;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Devices.Legacy.DebugExit;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Pci;
using Vmm.Kvm;

namespace Vmm.Cli.Platforms;

/// <summary>The arm64 machine (<see cref="Arm64Layout"/>, after QEMU's <c>virt</c>): RAM from 1 GiB, the Image
/// loader with our device tree, a PL011 as the console, the debug-exit register, and a generic ECAM PCIe host whose
/// MSIs go to the GIC's ITS. PSCI (in KVM) starts and stops CPUs and powers the VM off.</summary>
internal sealed class Arm64Platform : MachinePlatform
{
    private static readonly (string, string)[] Implied = [("panic", "-1")];

    public override KernelArchitecture Architecture => KernelArchitecture.Arm64;

    public override string Name => "arm64";

    public override int MaxCpus => Arm64Layout.MaxCpus;

    public override string SerialConsoleName => "ttyAMA0";

    public override string DefaultUserParameters => KernelCmdline.Arm64DefaultUserParameters;

    public override IReadOnlyList<(string Key, string Value)> ImpliedParameters => Implied;

    public override (ulong Start, ulong Size)[] RamRegions(ulong bytes) => [(Arm64Layout.RamStart, bytes)];

    public override LinuxBootResult LoadKernel(GuestMemory memory, byte[] kernel, byte[] initrd, KernelCmdline cmdline, VmConfig config)
    {
        if (config.Boot != BootSelection.Auto)
        {
            throw new BootException($"--boot {config.Boot.ToString().ToLowerInvariant()} is an x86_64 boot method; arm64 kernels boot one way");
        }
        return Arm64BootLoader.Load(memory, kernel, initrd, cmdline, config.Cpus);
    }

    public override ConsoleUart AddPlatformDevices(KvmVm vm, IoBus pioBus, IoBus mmioBus, Stream consoleOut, List<IDisposable> owned)
    {
        var uart = new Pl011(vm.InterruptLine((int)Arm64Layout.UartSpi), consoleOut);
        owned.Add(uart);
        mmioBus.Insert(uart, Arm64Layout.Uart, Arm64Layout.UartSize);
        mmioBus.Insert(new DebugExitDevice(vm.Control), Arm64Layout.DebugExit, DebugExitDevice.PortCount);
        return uart;
    }

    public override PciRoot CreatePciRoot(KvmVm vm, IoBus mmioBus, ulong ramSize) =>
        PciRoot.CreateArm64(mmioBus, spi => vm.InterruptLine(spi));

    public override void AttachPci(PciRoot pci, IoBus pioBus, IoBus mmioBus) =>
        pci.AttachEcam(mmioBus, Arm64Layout.PciEcam, Arm64Layout.PciEcamSize);

    /// <summary>Nothing: the device tree went in with the kernel, and describes the PCI host, not its devices.</summary>
    public override void WriteFirmwareTables(GuestMemory memory, int cpus, IReadOnlyList<int> pciSlots)
    {
    }
}
