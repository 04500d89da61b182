using System.Buffers.Binary;
using Vmm.Core.Bus;

namespace Vmm.Devices.Pci;

/// <summary>
/// Configuration mechanism #1: the address register at port 0xCF8 (bit 31 enable, bus 23:16, device 15:11,
/// function 10:8, register 7:2) and the data window at 0xCFC–0xCFF. Only full 32-bit writes to 0xCF8 latch an
/// address (Linux's probe writes a byte to 0xCFB first and must not disturb it).
/// </summary>
public sealed class PciConfigIo : IBusDevice
{
    public const ushort BasePort = 0xCF8;

    private readonly PciRoot _root;
    private uint _address;

    public PciConfigIo(PciRoot root) => _root = root;

    public uint Address => Volatile.Read(ref _address);

    public void Read(ulong offset, Span<byte> data)
    {
        if (offset < 4)
        {
            Span<byte> reg = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(reg, Address);
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = offset + (ulong)i < 4 ? reg[(int)offset + i] : (byte)0xFF;
            }
            return;
        }
        uint address = Address;
        if ((address & 0x8000_0000) == 0 || offset + (ulong)data.Length > 8)
        {
            data.Fill(0xFF);
            return;
        }
        Decode(address, out int bus, out int device, out int function, out int register);
        _root.ReadConfig(bus, device, function, register + (int)(offset - 4), data);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset == 0 && data.Length == 4)
        {
            Volatile.Write(ref _address, BinaryPrimitives.ReadUInt32LittleEndian(data) & 0x80FF_FFFC);
            return;
        }
        uint address = Address;
        if (offset < 4 || (address & 0x8000_0000) == 0 || offset + (ulong)data.Length > 8)
        {
            return;
        }
        Decode(address, out int bus, out int device, out int function, out int register);
        _root.WriteConfig(bus, device, function, register + (int)(offset - 4), data);
    }

    private static void Decode(uint address, out int bus, out int device, out int function, out int register)
    {
        bus = (int)((address >> 16) & 0xFF);
        device = (int)((address >> 11) & 0x1F);
        function = (int)((address >> 8) & 0x7);
        register = (int)(address & 0xFC);
    }
}
