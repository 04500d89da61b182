using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Boot;
using Vmm.Core.Memory;

namespace Vmm.Core.Tests.Arch;

public sealed class MpTableTests
{
    private sealed record Parsed(
        ulong FloatingPointer, ulong TableAddress, int TableLength, int EntryCount, uint LocalApic,
        List<(byte ApicId, byte Flags)> Cpus, List<(byte Id, string Type)> Buses, List<(byte Id, byte Version, uint Address)> IoApics,
        List<(byte Type, ushort Flags, byte Bus, byte Irq, byte Apic, byte Pin)> IoInterrupts,
        List<(byte Type, byte Apic, byte Lint)> LocalInterrupts);

    private static GuestMemory Ram() => GuestMemory.CreateAnonymous((new GuestAddress(0), 16UL << 20));

    /// <summary>Finds and parses the tables the way Linux does (mpparse.c): scan 639K..640K in 16-byte steps for
    /// "_MP_", check the floating pointer checksum, follow physptr, check "PCMP" and the table checksum.</summary>
    private static Parsed Parse(GuestMemory mem)
    {
        ulong scanStart = 639 * 0x400;
        ReadOnlySpan<byte> area = mem.GetSpan(new GuestAddress(scanStart), 0x400);
        int found = -1;
        for (int off = 0; off + 16 <= area.Length; off += 16)
        {
            if (area.Slice(off, 4).SequenceEqual("_MP_"u8) && Sum(area.Slice(off, 16)) == 0 && area[off + 8] == 1)
            {
                found = off;
                break;
            }
        }
        Assert.True(found >= 0, "no valid MP floating pointer in the first KiB of the EBDA");
        ReadOnlySpan<byte> mpf = area.Slice(found, 16);
        Assert.Equal(4, mpf[9]);
        ulong physptr = BinaryPrimitives.ReadUInt32LittleEndian(mpf[4..]);
        ReadOnlySpan<byte> header = mem.GetSpan(new GuestAddress(physptr), 44);
        Assert.True(header[..4].SequenceEqual("PCMP"u8));
        int length = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        ReadOnlySpan<byte> table = mem.GetSpan(new GuestAddress(physptr), (ulong)length);
        Assert.Equal(0, Sum(table));
        Assert.Equal(4, table[6]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(table[34..]);
        var p = new Parsed(scanStart + (ulong)found, physptr, length, count, BinaryPrimitives.ReadUInt32LittleEndian(table[36..]),
            [], [], [], [], []);
        int pos = 44;
        for (int i = 0; i < count; i++)
        {
            Assert.True(pos < length, "entry count runs past the table length");
            ReadOnlySpan<byte> e = table[pos..];
            switch (e[0])
            {
                case 0:
                    p.Cpus.Add((e[1], e[3]));
                    pos += 20;
                    break;
                case 1:
                    p.Buses.Add((e[1], System.Text.Encoding.ASCII.GetString(e.Slice(2, 6)).TrimEnd()));
                    pos += 8;
                    break;
                case 2:
                    Assert.Equal(1, e[3] & 1);
                    p.IoApics.Add((e[1], e[2], BinaryPrimitives.ReadUInt32LittleEndian(e[4..])));
                    pos += 8;
                    break;
                case 3:
                    p.IoInterrupts.Add((e[1], BinaryPrimitives.ReadUInt16LittleEndian(e[2..]), e[4], e[5], e[6], e[7]));
                    pos += 8;
                    break;
                case 4:
                    p.LocalInterrupts.Add((e[1], e[6], e[7]));
                    pos += 8;
                    break;
                default:
                    Assert.Fail($"unknown MP entry type {e[0]}");
                    break;
            }
        }
        Assert.Equal(length, pos);
        return p;
    }

    private static byte Sum(ReadOnlySpan<byte> data)
    {
        byte s = 0;
        foreach (byte b in data)
        {
            s += b;
        }
        return s;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(MpTable.MaxCpus)]
    public void Tables_ParseBack_WithCorrectChecksumsAndCounts(int cpus)
    {
        using GuestMemory mem = Ram();
        int size = MpTable.Write(mem, cpus);
        Parsed p = Parse(mem);

        Assert.Equal(X86Layout.MpTableAddress, p.FloatingPointer);
        Assert.True(p.TableAddress + (ulong)p.TableLength <= X86Layout.LowMemoryEnd);
        Assert.Equal(16 + p.TableLength, size);
        Assert.Equal((uint)X86Layout.LocalApicAddress, p.LocalApic);

        Assert.Equal(cpus, p.Cpus.Count);
        for (int i = 0; i < cpus; i++)
        {
            Assert.Equal((byte)i, p.Cpus[i].ApicId);
            Assert.Equal(i == 0 ? 3 : 1, p.Cpus[i].Flags); // enabled, BSP only on CPU 0
        }
        Assert.Equal([(MpTable.PciBusId, "PCI"), (MpTable.IsaBusId, "ISA")], p.Buses);
        Assert.Equal([((byte)cpus, (byte)0x11, 0xFEC0_0000u)], p.IoApics);

        Assert.Equal(16, p.IoInterrupts.Count);
        for (byte irq = 0; irq < 16; irq++)
        {
            // Identity: ISA IRQ n on IOAPIC pin n, as KVM routes GSI n by default.
            var pins = p.IoInterrupts.FindAll(e => e.Type == MpTable.InterruptInt && e.Irq == irq);
            Assert.Equal(irq, Assert.Single(pins).Pin);
        }
        Assert.DoesNotContain(p.IoInterrupts, e => e.Type == MpTable.InterruptExtInt);
        Assert.Equal([(MpTable.InterruptExtInt, (byte)0, (byte)0), (MpTable.InterruptNmi, (byte)0xFF, (byte)1)], p.LocalInterrupts);
    }

    [Fact]
    public void MaxCpus_IsWhatFitsBelow0xA0000()
    {
        Assert.Equal(39, MpTable.MaxCpus);
        using GuestMemory mem = Ram();
        Assert.Throws<BootException>(() => MpTable.Write(mem, MpTable.MaxCpus + 1));
        Assert.Throws<BootException>(() => MpTable.Write(mem, 0));
    }

    [Fact]
    public void PciInterrupts_AreLevelActiveLowOnBus0_AndReduceTheCpuLimit()
    {
        using GuestMemory mem = Ram();
        MpPciInterrupt[] pci = [new(1, 1, 5), new(2, 2, 9)];
        MpTable.Write(mem, 2, pci);
        Parsed p = Parse(mem);
        Assert.Contains((MpTable.InterruptInt, (ushort)0x0F, MpTable.PciBusId, (byte)(1 << 2 | 0), (byte)2, (byte)5), p.IoInterrupts);
        Assert.Contains((MpTable.InterruptInt, (ushort)0x0F, MpTable.PciBusId, (byte)(2 << 2 | 1), (byte)2, (byte)9), p.IoInterrupts);
        Assert.True(MpTable.MaxCpusWith(4) < MpTable.MaxCpus);
        Assert.Throws<BootException>(() => MpTable.Write(mem, 1, [new(32, 1, 5)]));
        Assert.Throws<BootException>(() => MpTable.Write(mem, 1, [new(1, 5, 5)]));
    }

    [Fact]
    public void MpTable_LiesInAnE820ReservedRange()
    {
        using GuestMemory mem = Ram();
        E820Entry[] map = E820Map.Build(mem);
        ulong end = X86Layout.MpTableAddress + (ulong)MpTable.AreaSize;
        Assert.Contains(map, e => e.Type == E820Type.Reserved && e.Address <= X86Layout.MpTableAddress && e.End >= end);
    }
}
