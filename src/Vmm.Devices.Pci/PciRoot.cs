using Vmm.Core.Arch.Arm64;
using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Core.Platform;

namespace Vmm.Devices.Pci;

/// <summary>
/// PCI segment 0, bus 0: a host bridge at slot 0 and up to 31 devices, reachable through port 0xCF8/0xCFC
/// (<see cref="PciConfigIo"/>) and ECAM (<see cref="PciEcam"/>). Devices get their BARs pre-assigned from a
/// <see cref="PciBarAllocator"/> (there is no firmware) and an INTx GSI.
/// <para><b>Composition</b> (what the CLI calls):
/// <code>
/// var pci = PciRoot.CreateX86(mmioBus, ramSize, gsi => platform.CreateInterruptLine(gsi));
/// pci.Add(new VirtioPciDevice(rngDevice, guestMemory, msiController, ioEventRegistrar, memoryMapper));
/// pci.AttachTo(pioBus, mmioBus);
/// </code></para>
/// <para><b>Guest kernel command line</b>: nothing is required. Without ACPI, x86 Linux (CONFIG_PCI_GOANY, the
/// default) first tries MMCONFIG — which it only discovers from the ACPI MCFG table or by recognising a handful of
/// real chipsets' registers, so it is not found here — then falls back to configuration mechanism #1 on
/// ports 0xCF8/0xCFC, which it accepts because bus 0 has a host bridge (class 0x0600). <c>pci=conf1</c> skips the
/// MMCONFIG attempt and is harmless; avoid <c>pci=off</c>/<c>pci=noconf1</c>. Extended configuration space
/// (offsets ≥ 256) is then unavailable to the guest; virtio-pci does not use it. The guest kernel needs
/// CONFIG_PCI, CONFIG_PCI_MSI and CONFIG_VIRTIO_PCI; with MSI-X no MP-table/PIRQ interrupt routing is needed,
/// without it (INTx fallback) the MP table must route each slot's INTA# to <see cref="IntxGsiForSlot"/>.
/// </para>
/// </summary>
public sealed class PciRoot
{
    public const int MaxSlots = 32;

    private readonly PciDevice?[] _slots = new PciDevice?[MaxSlots];
    private readonly PciBarAllocator _bars;
    private readonly Func<int, IInterruptLine>? _intxLines;
    private readonly Func<int, int> _intxLineForSlot;
    private readonly IoBus _mmioBus;

    /// <param name="mmioBus">The bus BARs are registered on.</param>
    /// <param name="bars">Where BARs are placed.</param>
    /// <param name="intxLines">Creates the legacy interrupt line for a GSI (for devices whose driver does not
    /// enable MSI-X); null = no INTx.</param>
    /// <param name="intxLineForSlot">The line (x86 GSI, arm64 SPI) a slot's INTA# drives; the x86 swizzle when null.</param>
    public PciRoot(IoBus mmioBus, PciBarAllocator bars, Func<int, IInterruptLine>? intxLines = null, Func<int, int>? intxLineForSlot = null)
    {
        _intxLineForSlot = intxLineForSlot ?? IntxGsiForSlot;
        ArgumentNullException.ThrowIfNull(mmioBus);
        ArgumentNullException.ThrowIfNull(bars);
        _mmioBus = mmioBus;
        _bars = bars;
        _intxLines = intxLines;
        HostBridge = new PciHostBridge();
        Place(HostBridge, 0);
    }

    /// <summary>A root with the x86 layout: BARs in <see cref="X86Layout.Pci32WindowStart"/> and, for 64-bit BARs,
    /// a 256 GiB window at <see cref="X86Layout.Pci64WindowStart"/>.</summary>
    public static PciRoot CreateX86(IoBus mmioBus, ulong ramSize, Func<int, IInterruptLine>? intxLines = null) =>
        new(mmioBus,
            new PciBarAllocator(X86Layout.Pci32WindowStart, X86Layout.Pci32WindowSize, X86Layout.Pci64WindowStart(ramSize), 256UL << 30),
            intxLines);

    /// <summary>A root with the arm64 layout: BARs in <see cref="Arm64Layout.PciMmio32"/> and, for 64-bit BARs,
    /// <see cref="Arm64Layout.PciMmio64"/>; INTA# on the SPI the device tree's interrupt-map gives the slot (MSIs
    /// go to the ITS).</summary>
    public static PciRoot CreateArm64(IoBus mmioBus, Func<int, IInterruptLine>? intxLines = null) =>
        new(mmioBus, new PciBarAllocator(Arm64Layout.PciMmio32, Arm64Layout.PciMmio32Size, Arm64Layout.PciMmio64, Arm64Layout.PciMmio64Size),
            intxLines, slot => (int)Arm64Layout.PciIntxSpi(slot));

    public PciHostBridge HostBridge { get; }

    /// <summary>The slot the next <see cref="Add"/> will use, or -1 when the bus is full.</summary>
    public int NextFreeSlot => Array.IndexOf(_slots, null);

    /// <summary>The PCI requester id (bus 0, function 0) of a device in <paramref name="slot"/>: what an MSI carries
    /// to an arm64 ITS as its device id.</summary>
    public static ushort RequesterId(int slot) => (ushort)(slot << 3);

    /// <summary>The GSI a device in <paramref name="slot"/> drives with INTA# (swizzled over
    /// <see cref="X86Layout.PciIntxGsis"/>).</summary>
    public static int IntxGsiForSlot(int slot) => X86Layout.PciIntxGsis[slot % X86Layout.PciIntxGsis.Length];

    /// <summary>The device in <paramref name="slot"/>, or null.</summary>
    public PciDevice? this[int slot] => (uint)slot < MaxSlots ? _slots[slot] : null;

    /// <summary>Puts <paramref name="device"/> in the next free slot, assigns its BARs and INTx line; returns the slot.</summary>
    public int Add(PciDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        int slot = Array.IndexOf(_slots, null);
        if (slot < 0)
        {
            throw new InvalidOperationException("PCI bus 0 is full");
        }
        Place(device, slot);
        return slot;
    }

    private void Place(PciDevice device, int slot)
    {
        if (device.Slot >= 0)
        {
            throw new InvalidOperationException("device already on a bus");
        }
        device.AttachToBus(_mmioBus);
        foreach ((int index, ulong size, bool is64) in device.DefinedBars())
        {
            device.AssignBar(index, _bars.Allocate(size, is64));
        }
        if (device is IPciInterruptSource source)
        {
            int gsi = _intxLineForSlot(slot);
            source.ConnectIntx(gsi, _intxLines?.Invoke(gsi));
        }
        device.Slot = slot;
        _slots[slot] = device;
    }

    /// <summary>Registers the configuration mechanisms: <see cref="PciConfigIo"/> at port 0xCF8 (8 ports) on
    /// <paramref name="pioBus"/> and <see cref="PciEcam"/> at <see cref="X86Layout.PciEcamStart"/> on
    /// <paramref name="mmioBus"/>.</summary>
    public void AttachTo(IoBus pioBus, IoBus mmioBus)
    {
        ArgumentNullException.ThrowIfNull(pioBus);
        ArgumentNullException.ThrowIfNull(mmioBus);
        pioBus.Insert(new PciConfigIo(this), PciConfigIo.BasePort, 8);
        mmioBus.Insert(new PciEcam(this), X86Layout.PciEcamStart, X86Layout.PciEcamSize);
    }

    /// <summary>Registers only <see cref="PciEcam"/>, at <paramref name="ecamBase"/> (arm64, where configuration space
    /// is reached through the device tree's ECAM window alone).</summary>
    public void AttachEcam(IoBus mmioBus, ulong ecamBase, ulong ecamSize)
    {
        ArgumentNullException.ThrowIfNull(mmioBus);
        mmioBus.Insert(new PciEcam(this), ecamBase, ecamSize);
    }

    /// <summary>Configuration read; missing bus/device/function → all ones.</summary>
    public void ReadConfig(int bus, int device, int function, int offset, Span<byte> data)
    {
        PciDevice? d = bus == 0 && function == 0 ? this[device] : null;
        if (d is null)
        {
            data.Fill(0xFF);
            return;
        }
        d.ReadConfig(offset, data);
    }

    /// <summary>Configuration write; missing bus/device/function → ignored.</summary>
    public void WriteConfig(int bus, int device, int function, int offset, ReadOnlySpan<byte> data)
    {
        PciDevice? d = bus == 0 && function == 0 ? this[device] : null;
        d?.WriteConfig(offset, data);
    }
}

/// <summary>A PCI function that can raise legacy INTx (the root connects its line).</summary>
public interface IPciInterruptSource
{
    /// <summary>Sets Interrupt Line/Pin and the line to use when MSI-X is off; <paramref name="line"/> may be null.</summary>
    void ConnectIntx(int gsi, IInterruptLine? line);
}
