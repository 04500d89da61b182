using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.Pci.Virtio;

namespace Vmm.Devices.Pci.Tests;

/// <summary>A PCI root on fresh buses with config-space helpers that go through port 0xCF8/0xCFC, as a guest does.</summary>
internal sealed class PciBench : IDisposable
{
    public const ulong RamSize = 16 << 20;

    public PciBench()
    {
        Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), RamSize));
        Root = PciRoot.CreateX86(Mmio, RamSize, gsi => Lines[gsi] = new FakeInterruptLine(gsi));
        Root.AttachTo(Pio, Mmio);
    }

    public IoBus Pio { get; } = new("pio");
    public IoBus Mmio { get; } = new("mmio");
    public GuestMemory Memory { get; }
    public PciRoot Root { get; }
    public Dictionary<int, FakeInterruptLine> Lines { get; } = [];
    public FakeMsiController Msi { get; } = new();
    public FakeIoEventRegistrar IoEvents { get; } = new();
    public FakeMemoryMapper Mapper { get; } = new();

    public (VirtioPciDevice Pci, FakeVirtioDevice Device, int Slot) AddVirtio(ushort[]? queues = null, ulong features = 0,
        SharedMemoryRegion[]? regions = null, bool withIoEvents = false)
    {
        var device = new FakeVirtioDevice(queues ?? [16, 16], features, regions);
        var pci = new VirtioPciDevice(device, Memory, Msi, withIoEvents ? IoEvents : null, Mapper);
        int slot = Root.Add(pci);
        return (pci, device, slot);
    }

    public uint ConfigRead(int slot, int offset, int width = 4)
    {
        Span<byte> addr = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(addr, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        Assert.True(Pio.Write(0xCF8, addr));
        Span<byte> data = stackalloc byte[4];
        Assert.True(Pio.Read(0xCFC + (ulong)(offset & 3), data[..width]));
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    public void ConfigWrite(int slot, int offset, uint value, int width = 4)
    {
        Span<byte> addr = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(addr, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        Assert.True(Pio.Write(0xCF8, addr));
        Span<byte> data = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(data, value);
        Assert.True(Pio.Write(0xCFC + (ulong)(offset & 3), data[..width]));
    }

    public ulong MmioRead(ulong address, int width)
    {
        Span<byte> data = stackalloc byte[8];
        Assert.True(Mmio.Read(address, data[..width]), $"no device at 0x{address:x}");
        return BinaryPrimitives.ReadUInt64LittleEndian(data);
    }

    public void MmioWrite(ulong address, ulong value, int width)
    {
        Span<byte> data = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(data, value);
        Assert.True(Mmio.Write(address, data[..width]), $"no device at 0x{address:x}");
    }

    public static ulong EcamAddress(int slot, int offset) => X86Layout.PciEcamStart + ((ulong)slot << 15) + (ulong)offset;

    public void Dispose() => Memory.Dispose();
}
