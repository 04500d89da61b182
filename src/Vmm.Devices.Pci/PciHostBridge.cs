namespace Vmm.Devices.Pci;

/// <summary>The host bridge at 00:00.0 (class 0x0600). Linux's conf1 probe (<c>pci_sanity_check</c>) looks for a
/// host-bridge class on bus 0 before trusting port 0xCF8 when there is no ACPI.</summary>
public sealed class PciHostBridge : PciDevice
{
    /// <summary>Red Hat, Inc. / QEMU PCIe host bridge IDs, so guests recognise a generic bridge.</summary>
    public PciHostBridge() : base(0x1B36, 0x0008, 0x06_00_00, 0, 0x1AF4, 0x1100)
    {
    }
}
