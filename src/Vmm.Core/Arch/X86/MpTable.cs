using System.Buffers.Binary;
using System.Diagnostics;
using Vmm.Core.Boot;
using Vmm.Core.Memory;

namespace Vmm.Core.Arch.X86;

/// <summary>A PCI INTx routing for the MP table: device <paramref name="Device"/> on bus 0, pin 1..4 (INTA..INTD),
/// wired to IOAPIC input <paramref name="IoApicPin"/> (level-triggered, active low, as PCI requires).</summary>
public readonly record struct MpPciInterrupt(byte Device, byte Pin, byte IoApicPin);

/// <summary>
/// The Intel MultiProcessor Specification 1.4 tables, which tell a firmware-less Linux guest (no ACPI) its CPUs,
/// buses, IOAPIC and interrupt wiring. The floating pointer and the configuration table sit together at
/// <see cref="X86Layout.MpTableAddress"/> = 639 KiB, the first KiB of the EBDA, which the kernel scans
/// (arch/x86/kernel/mpparse.c: smp_scan_config(639 * 0x400, 0x400)); everything must end below 0xA0000.
/// <para>Contents: one processor entry per vCPU (APIC ids 0..N-1, CPU 0 is the BSP); buses PCI (id 0) and ISA
/// (id 1); one IOAPIC (id N, version 0x11, at 0xFEC00000); I/O interrupt entries for the ISA IRQs as on a PC:
/// ISA IRQ n on IOAPIC pin n for n = 0..15 (KVM's default GSI routing); optional PCI INTx entries; local interrupts
/// ExtINT → LINT0 of the BSP, NMI → LINT1 of all CPUs.</para>
/// </summary>
public static class MpTable
{
    public const int FloatingPointerSize = 16;
    public const int HeaderSize = 44;
    public const int ProcessorEntrySize = 20;
    public const int BusEntrySize = 8;
    public const int IoApicEntrySize = 8;
    public const int IoInterruptEntrySize = 8;
    public const int LocalInterruptEntrySize = 8;
    public const int IsaInterruptEntries = 16; // IRQ 0..15, identity-mapped
    public const int AreaSize = (int)(X86Layout.LowMemoryEnd - X86Layout.MpTableAddress);

    public const byte PciBusId = 0;
    public const byte IsaBusId = 1;
    public const byte IoApicVersion = 0x11;
    public const byte LocalApicVersion = 0x14;
    public const byte SpecRevision = 4;

    // Entry types and interrupt types (MP spec 4.3).
    public const byte EntryProcessor = 0, EntryBus = 1, EntryIoApic = 2, EntryIoInterrupt = 3, EntryLocalInterrupt = 4;
    public const byte InterruptInt = 0, InterruptNmi = 1, InterruptSmi = 2, InterruptExtInt = 3;

    private const int FixedSize = FloatingPointerSize + HeaderSize + 2 * BusEntrySize + IoApicEntrySize +
                                  IsaInterruptEntries * IoInterruptEntrySize + 2 * LocalInterruptEntrySize;

    /// <summary>The most vCPUs whose tables fit below 0xA0000 (with no PCI INTx entries).</summary>
    public const int MaxCpus = (AreaSize - FixedSize) / ProcessorEntrySize;

    /// <summary>The most vCPUs that fit alongside <paramref name="pciInterrupts"/> PCI INTx entries.</summary>
    public static int MaxCpusWith(int pciInterrupts) =>
        Math.Max(0, (AreaSize - FixedSize - pciInterrupts * IoInterruptEntrySize) / ProcessorEntrySize);

    /// <summary>Writes the MP tables for <paramref name="cpuCount"/> vCPUs; returns the bytes used.</summary>
    public static int Write(GuestMemory memory, int cpuCount, ReadOnlySpan<MpPciInterrupt> pciInterrupts = default)
    {
        int maxCpus = MaxCpusWith(pciInterrupts.Length);
        if (cpuCount < 1 || cpuCount > maxCpus)
        {
            throw new BootException($"{cpuCount} vCPUs requested; the MP table holds 1 to {maxCpus}");
        }
        if (cpuCount >= 0xFF)
        {
            throw new BootException($"{cpuCount} vCPUs leave no xAPIC id for the IOAPIC");
        }
        foreach (MpPciInterrupt p in pciInterrupts)
        {
            if (p.Device > 31 || p.Pin is < 1 or > 4 || p.IoApicPin > 23)
            {
                throw new BootException($"invalid PCI interrupt routing: device {p.Device}, pin {p.Pin}, IOAPIC pin {p.IoApicPin}");
            }
        }
        byte ioApicId = (byte)cpuCount;
        int tableLength = HeaderSize + cpuCount * ProcessorEntrySize + 2 * BusEntrySize + IoApicEntrySize +
                          (IsaInterruptEntries + pciInterrupts.Length) * IoInterruptEntrySize + 2 * LocalInterruptEntrySize;
        int total = FloatingPointerSize + tableLength;
        Span<byte> area = memory.GetSpan(new GuestAddress(X86Layout.MpTableAddress), (ulong)AreaSize);
        area.Clear();

        // Floating pointer structure (MP spec 4.1).
        Span<byte> mpf = area[..FloatingPointerSize];
        "_MP_"u8.CopyTo(mpf);
        BinaryPrimitives.WriteUInt32LittleEndian(mpf[4..], (uint)(X86Layout.MpTableAddress + FloatingPointerSize));
        mpf[8] = 1; // length in 16-byte units
        mpf[9] = SpecRevision;
        // mpf[11] = 0: feature byte 1, a configuration table is present; mpf[12] = 0: no IMCR (virtual wire mode).
        mpf[10] = Checksum(mpf);

        // Configuration table header (MP spec 4.2).
        Span<byte> table = area.Slice(FloatingPointerSize, tableLength);
        "PCMP"u8.CopyTo(table);
        BinaryPrimitives.WriteUInt16LittleEndian(table[4..], (ushort)tableLength);
        table[6] = SpecRevision;
        "VMM     "u8.CopyTo(table[8..]);      // OEM id, 8 chars
        "VMM-X86     "u8.CopyTo(table[16..]); // product id, 12 chars
        int entryCount = cpuCount + 2 + 1 + IsaInterruptEntries + pciInterrupts.Length + 2;
        BinaryPrimitives.WriteUInt16LittleEndian(table[34..], (ushort)entryCount);
        BinaryPrimitives.WriteUInt32LittleEndian(table[36..], (uint)X86Layout.LocalApicAddress);

        int pos = HeaderSize;
        for (int cpu = 0; cpu < cpuCount; cpu++)
        {
            Span<byte> e = table.Slice(pos, ProcessorEntrySize);
            e[0] = EntryProcessor;
            e[1] = (byte)cpu; // local APIC id
            e[2] = LocalApicVersion;
            e[3] = (byte)(0x1 | (cpu == 0 ? 0x2 : 0)); // enabled; bootstrap processor
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], 0x600);  // signature: family 6
            BinaryPrimitives.WriteUInt32LittleEndian(e[8..], 0x201);  // features: FPU, APIC
            pos += ProcessorEntrySize;
        }
        pos = WriteBus(table, pos, PciBusId, "PCI   "u8);
        pos = WriteBus(table, pos, IsaBusId, "ISA   "u8);

        Span<byte> ioapic = table.Slice(pos, IoApicEntrySize);
        ioapic[0] = EntryIoApic;
        ioapic[1] = ioApicId;
        ioapic[2] = IoApicVersion;
        ioapic[3] = 1; // enabled
        BinaryPrimitives.WriteUInt32LittleEndian(ioapic[4..], (uint)X86Layout.IoApicAddress);
        pos += IoApicEntrySize;

        // ISA interrupts: flags 0 = "conforms to bus" (ISA: edge-triggered, active high). IRQ n on IOAPIC pin n,
        // matching KVM's default GSI routing (GSI n → IOAPIC pin n), so the PIT's IRQ0 reaches the pin Linux
        // programs for the timer; Firecracker's table does the same.
        for (byte irq = 0; irq < 16; irq++)
        {
            pos = WriteInterrupt(table, pos, EntryIoInterrupt, InterruptInt, 0, IsaBusId, irq, ioApicId, irq);
        }
        foreach (MpPciInterrupt p in pciInterrupts)
        {
            // PCI source "IRQ": device number in bits 2..6, pin (0 = INTA) in bits 0..1.
            // Flags 0x0F: polarity 3 (active low), trigger 3 (level).
            pos = WriteInterrupt(table, pos, EntryIoInterrupt, InterruptInt, 0x0F, PciBusId,
                (byte)((p.Device << 2) | (p.Pin - 1)), ioApicId, p.IoApicPin);
        }
        pos = WriteInterrupt(table, pos, EntryLocalInterrupt, InterruptExtInt, 0, IsaBusId, 0, 0x00, 0);
        pos = WriteInterrupt(table, pos, EntryLocalInterrupt, InterruptNmi, 0, IsaBusId, 0, 0xFF, 1);
        Debug.Assert(pos == tableLength);

        table[7] = Checksum(table);
        return total;
    }

    private static int WriteBus(Span<byte> table, int pos, byte id, ReadOnlySpan<byte> type)
    {
        Span<byte> e = table.Slice(pos, BusEntrySize);
        e[0] = EntryBus;
        e[1] = id;
        type.CopyTo(e[2..]);
        return pos + BusEntrySize;
    }

    private static int WriteInterrupt(Span<byte> table, int pos, byte entryType, byte interruptType, ushort flags,
        byte sourceBus, byte sourceIrq, byte destinationId, byte destinationPin)
    {
        Span<byte> e = table.Slice(pos, 8);
        e[0] = entryType;
        e[1] = interruptType;
        BinaryPrimitives.WriteUInt16LittleEndian(e[2..], flags);
        e[4] = sourceBus;
        e[5] = sourceIrq;
        e[6] = destinationId;
        e[7] = destinationPin;
        return pos + 8;
    }

    /// <summary>The byte that makes the sum of <paramref name="data"/> zero (its checksum byte must be 0 on entry).</summary>
    private static byte Checksum(ReadOnlySpan<byte> data)
    {
        byte sum = 0;
        foreach (byte b in data)
        {
            sum += b;
        }
        return (byte)-sum;
    }
}
