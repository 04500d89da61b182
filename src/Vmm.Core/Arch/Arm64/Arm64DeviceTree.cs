using Vmm.Core.DeviceTree;

namespace Vmm.Core.Arch.Arm64;

/// <summary>What the arm64 guest's device tree describes.</summary>
/// <param name="MemorySize">Bytes of RAM from <see cref="Arm64Layout.RamStart"/>.</param>
/// <param name="Cpus">vCPUs, started and stopped through PSCI.</param>
/// <param name="CommandLine">The kernel command line (/chosen/bootargs).</param>
/// <param name="Initrd">The initrd's guest-physical start and end, or null.</param>
public sealed record Arm64MachineSpec(ulong MemorySize, int Cpus, string CommandLine, (ulong Start, ulong End)? Initrd = null);

/// <summary>
/// The flattened device tree an arm64 Linux guest boots with (its address goes in x0): memory, the CPUs with PSCI
/// (HVC, as KVM implements it), the GICv3 with its ITS, the architected timer, the PL011 UART as the console, and a
/// generic ECAM PCIe host whose MSIs go to the ITS (<c>msi-map</c>), in the layout of <see cref="Arm64Layout"/>.
/// </summary>
public static class Arm64DeviceTree
{
    public const uint GicPhandle = 1, ItsPhandle = 2, ClockPhandle = 3;

    // GIC interrupt specifiers: type (0 SPI, 1 PPI), number, flags (4: level, active high).
    private const uint Spi = 0, Ppi = 1, LevelHigh = 4;

    // PCI address space codes (the first cell of a PCI address): 32- and 64-bit memory.
    private const uint PciMem32 = 0x0200_0000, PciMem64Prefetchable = 0x4300_0000;

    public static byte[] Create(Arm64MachineSpec spec)
    {
        if (spec.Cpus < 1 || spec.Cpus > Arm64Layout.MaxCpus)
        {
            throw new ArgumentOutOfRangeException(nameof(spec), $"cpus must be 1 to {Arm64Layout.MaxCpus}");
        }
        var fdt = new FdtWriter();
        fdt.BeginNode("");
        fdt.PropertyStrings("compatible", "linux,dummy-virt");
        fdt.PropertyCells("#address-cells", 2);
        fdt.PropertyCells("#size-cells", 2);
        fdt.PropertyCells("interrupt-parent", GicPhandle);

        fdt.BeginNode("chosen");
        fdt.PropertyStrings("bootargs", spec.CommandLine);
        fdt.PropertyStrings("stdout-path", $"/pl011@{Arm64Layout.Uart:x}");
        if (spec.Initrd is (ulong start, ulong end))
        {
            fdt.PropertyU64s("linux,initrd-start", start);
            fdt.PropertyU64s("linux,initrd-end", end);
        }
        fdt.EndNode();

        fdt.BeginNode($"memory@{Arm64Layout.RamStart:x}");
        fdt.PropertyStrings("device_type", "memory");
        fdt.PropertyU64s("reg", Arm64Layout.RamStart, spec.MemorySize);
        fdt.EndNode();

        fdt.BeginNode("cpus");
        fdt.PropertyCells("#address-cells", 1);
        fdt.PropertyCells("#size-cells", 0);
        for (int cpu = 0; cpu < spec.Cpus; cpu++)
        {
            fdt.BeginNode($"cpu@{cpu:x}");
            fdt.PropertyStrings("device_type", "cpu");
            fdt.PropertyStrings("compatible", "arm,arm-v8");
            fdt.PropertyStrings("enable-method", "psci");
            fdt.PropertyCells("reg", Arm64Layout.MpidrAffinity(cpu));
            fdt.EndNode();
        }
        fdt.EndNode();

        fdt.BeginNode("psci");
        fdt.PropertyStrings("compatible", "arm,psci-1.0", "arm,psci-0.2");
        fdt.PropertyStrings("method", "hvc");
        fdt.EndNode();

        fdt.BeginNode($"intc@{Arm64Layout.GicDistributor:x}");
        fdt.PropertyStrings("compatible", "arm,gic-v3");
        fdt.PropertyCells("#interrupt-cells", 3);
        fdt.Property("interrupt-controller");
        fdt.PropertyU64s("reg", Arm64Layout.GicDistributor, Arm64Layout.GicDistributorSize,
            Arm64Layout.GicRedistributors, Arm64Layout.GicRedistributorSizePerCpu * (ulong)spec.Cpus);
        fdt.PropertyCells("#address-cells", 2);
        fdt.PropertyCells("#size-cells", 2);
        fdt.Property("ranges");
        fdt.PropertyCells("phandle", GicPhandle);
        fdt.BeginNode($"its@{Arm64Layout.GicIts:x}");
        fdt.PropertyStrings("compatible", "arm,gic-v3-its");
        fdt.Property("msi-controller");
        fdt.PropertyCells("#msi-cells", 1);
        fdt.PropertyU64s("reg", Arm64Layout.GicIts, Arm64Layout.GicItsSize);
        fdt.PropertyCells("phandle", ItsPhandle);
        fdt.EndNode();
        fdt.EndNode();

        fdt.BeginNode("timer");
        fdt.PropertyStrings("compatible", "arm,armv8-timer");
        // Secure, non-secure, virtual and hypervisor physical timer PPIs, as the architecture assigns them.
        fdt.PropertyCells("interrupts", Ppi, 13, LevelHigh, Ppi, 14, LevelHigh, Ppi, 11, LevelHigh, Ppi, 10, LevelHigh);
        fdt.Property("always-on");
        fdt.EndNode();

        fdt.BeginNode("apb-pclk");
        fdt.PropertyStrings("compatible", "fixed-clock");
        fdt.PropertyCells("#clock-cells", 0);
        fdt.PropertyCells("clock-frequency", 24_000_000);
        fdt.PropertyStrings("clock-output-names", "clk24mhz");
        fdt.PropertyCells("phandle", ClockPhandle);
        fdt.EndNode();

        fdt.BeginNode($"pl011@{Arm64Layout.Uart:x}");
        fdt.PropertyStrings("compatible", "arm,pl011", "arm,primecell");
        fdt.PropertyU64s("reg", Arm64Layout.Uart, Arm64Layout.UartSize);
        fdt.PropertyCells("interrupts", Spi, Arm64Layout.UartSpi, LevelHigh);
        fdt.PropertyCells("clocks", ClockPhandle, ClockPhandle);
        fdt.PropertyStrings("clock-names", "uartclk", "apb_pclk");
        fdt.EndNode();

        fdt.BeginNode($"pcie@{Arm64Layout.PciEcam:x}");
        fdt.PropertyStrings("compatible", "pci-host-ecam-generic");
        fdt.PropertyStrings("device_type", "pci");
        fdt.PropertyCells("#address-cells", 3);
        fdt.PropertyCells("#size-cells", 2);
        fdt.PropertyCells("#interrupt-cells", 1);
        fdt.PropertyU64s("reg", Arm64Layout.PciEcam, Arm64Layout.PciEcamSize);
        fdt.PropertyCells("bus-range", 0, 0);
        fdt.PropertyCells("linux,pci-domain", 0);
        fdt.Property("dma-coherent");
        // Each range: PCI address (3 cells), CPU address (2), size (2); both windows are identity-mapped.
        fdt.PropertyCells("ranges",
            PciMem32, Hi(Arm64Layout.PciMmio32), Lo(Arm64Layout.PciMmio32), Hi(Arm64Layout.PciMmio32), Lo(Arm64Layout.PciMmio32),
            Hi(Arm64Layout.PciMmio32Size), Lo(Arm64Layout.PciMmio32Size),
            PciMem64Prefetchable, Hi(Arm64Layout.PciMmio64), Lo(Arm64Layout.PciMmio64), Hi(Arm64Layout.PciMmio64), Lo(Arm64Layout.PciMmio64),
            Hi(Arm64Layout.PciMmio64Size), Lo(Arm64Layout.PciMmio64Size));
        // INTx for drivers without MSI-X: slot (bits 11–15 of the address's first cell) and pin select a GIC SPI.
        fdt.PropertyCells("interrupt-map-mask", 0x1800, 0, 0, 7);
        var map = new List<uint>();
        for (int slot = 0; slot < (int)Arm64Layout.PciIntxSpiCount; slot++)
        {
            for (int pin = 1; pin <= 4; pin++)
            {
                // Child address (3 cells) and pin; the GIC's phandle and unit address (#address-cells 2); its specifier.
                map.AddRange([(uint)slot << 11, 0, 0, (uint)pin, GicPhandle, 0, 0, Spi, Arm64Layout.PciIntxSpi(slot, pin), LevelHigh]);
            }
        }
        fdt.PropertyCells("interrupt-map", [.. map]);
        // Requester ids 0…0xffff map one to one onto ITS device ids.
        fdt.PropertyCells("msi-map", 0, ItsPhandle, 0, 0x1_0000);
        fdt.EndNode();

        fdt.EndNode();
        return fdt.Finish();
    }

    private static uint Hi(ulong value) => (uint)(value >> 32);

    private static uint Lo(ulong value) => (uint)value;
}
