using System.Buffers.Binary;
using Vmm.Core.Arch.Arm64;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Devices.Pci.Virtio;

namespace Vmm.Devices.Pci.Tests;

/// <summary>The arm64 PCI host: configuration through ECAM alone at the device tree's address, BARs in the arm64
/// windows, INTA# on the SPI the device tree's interrupt-map names, and requester ids for the ITS.</summary>
public sealed class Arm64PciRootTests
{
    [Fact]
    public void Devices_are_configured_through_ecam_with_arm64_bars_and_swizzled_spis()
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous((new GuestAddress(Arm64Layout.RamStart), 16UL << 20));
        var mmio = new IoBus("mmio");
        var pio = new IoBus("pio");
        var lines = new Dictionary<int, FakeInterruptLine>();
        PciRoot root = PciRoot.CreateArm64(mmio, spi => lines[spi] = new FakeInterruptLine(spi));
        root.AttachEcam(mmio, Arm64Layout.PciEcam, Arm64Layout.PciEcamSize);

        var slots = new List<int>();
        var devices = new List<VirtioPciDevice>();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(i + 1, root.NextFreeSlot);
            var pci = new VirtioPciDevice(new FakeVirtioDevice([16], 0, null), memory, new FakeMsiController(), null, new FakeMemoryMapper());
            devices.Add(pci);
            slots.Add(root.Add(pci));
        }
        Assert.Equal([1, 2, 3, 4, 5], slots);
        Assert.Equal((ushort)(5 << 3), PciRoot.RequesterId(5));

        Span<byte> data = stackalloc byte[4];
        foreach (int slot in slots)
        {
            ulong config = Arm64Layout.PciEcam + ((ulong)slot << 15);
            Assert.True(mmio.Read(config, data));
            Assert.Equal(0x1AF4u, BinaryPrimitives.ReadUInt32LittleEndian(data) & 0xFFFF);
            Assert.True(mmio.Read(config + 0x3C, data)); // Interrupt Line, Interrupt Pin
            uint spi = Arm64Layout.PciIntxSpi(slot);
            Assert.Equal(spi, data[0]);
            Assert.Equal(1, data[1]); // INTA#
            Assert.True(lines.ContainsKey((int)spi));
            Assert.True(mmio.Read(config + 0x10, data)); // BAR0
            uint bar0 = BinaryPrimitives.ReadUInt32LittleEndian(data) & ~0xFu;
            Assert.InRange(bar0, (uint)Arm64Layout.PciMmio32, (uint)(Arm64Layout.PciMmio32 + Arm64Layout.PciMmio32Size - 1));
        }
        Assert.Equal(4u, Arm64Layout.PciIntxSpi(1));
        Assert.Equal(3u, Arm64Layout.PciIntxSpi(4)); // slot 4 wraps around to the first SPI
        Assert.False(pio.Read(0xCFC, data)); // no port I/O configuration mechanism on arm64
        foreach (VirtioPciDevice d in devices)
        {
            d.Dispose();
        }
    }
}
