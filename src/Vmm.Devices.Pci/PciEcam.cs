using Vmm.Core.Bus;

namespace Vmm.Devices.Pci;

/// <summary>
/// Enhanced configuration access (ECAM/MMCONFIG): a 4 KiB window per function at
/// <c>bus &lt;&lt; 20 | device &lt;&lt; 15 | function &lt;&lt; 12</c>. Offsets 256–4095 of a present function read as zero
/// (no extended capabilities); accesses that straddle a function's window read all ones and are not written.
/// </summary>
public sealed class PciEcam : IBusDevice
{
    private readonly PciRoot _root;

    public PciEcam(PciRoot root) => _root = root;

    public void Read(ulong offset, Span<byte> data)
    {
        if (!Decode(offset, data.Length, out int bus, out int device, out int function, out int register))
        {
            data.Fill(0xFF);
            return;
        }
        _root.ReadConfig(bus, device, function, register, data);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (Decode(offset, data.Length, out int bus, out int device, out int function, out int register))
        {
            _root.WriteConfig(bus, device, function, register, data);
        }
    }

    private static bool Decode(ulong offset, int width, out int bus, out int device, out int function, out int register)
    {
        bus = (int)((offset >> 20) & 0xFF);
        device = (int)((offset >> 15) & 0x1F);
        function = (int)((offset >> 12) & 0x7);
        register = (int)(offset & 0xFFF);
        return register + width <= PciConfigRegisters.ExtendedConfigSpaceSize && offset < 256UL << 20;
    }
}
