using System.Buffers.Binary;
using Vmm.Core.Memory;

namespace Vmm.Core.Arch.X86;

/// <summary>
/// Builds the processor state a kernel is entered in — GDT, identity page tables, segment registers, control
/// registers — for the three entry methods: PVH (32-bit flat protected mode, paging off), the 32-bit boot protocol
/// (same mode, boot_params in ESI) and the 64-bit boot protocol (long mode, identity map of the first 1 GiB).
/// <para>
/// GDT at <see cref="X86Layout.GdtAddress"/> (4 entries fit before the IDT at 0x520):
/// 0x00 null, 0x08 TSS, 0x10 code (<c>__BOOT_CS</c>), 0x18 data (<c>__BOOT_DS</c>). The code descriptor is written
/// as 32-bit or 64-bit to match the entry method, so the table always agrees with the hidden segment state; the
/// kernel loads its own GDT within its first instructions in every method. The TSS is there because VM entry needs a
/// usable busy TSS in TR; with an empty IDT nothing ever consults it.
/// </para>
/// </summary>
public static class X86BootSetup
{
    public const ushort TssSelector = 0x08;
    /// <summary>The kernel's __BOOT_CS (boot.rst: the 32- and 64-bit protocols require it).</summary>
    public const ushort CodeSelector = 0x10;
    /// <summary>The kernel's __BOOT_DS.</summary>
    public const ushort DataSelector = 0x18;
    public const int GdtEntries = 4;

    public const ulong Cr0ProtectionEnable = 1UL << 0;
    /// <summary>CR0.ET: hard-wired to 1 on every CPU since the 486; set so the value matches what the CPU reports.</summary>
    public const ulong Cr0ExtensionType = 1UL << 4;
    public const ulong Cr0Paging = 1UL << 31;
    public const ulong Cr4Pae = 1UL << 5;
    public const ulong EferLme = 1UL << 8;
    public const ulong EferLma = 1UL << 10;

    /// <summary>Page-table entry bits: present, writable, and (in a PD) 2 MiB page.</summary>
    private const ulong PtePresent = 1, PteWritable = 2, PtePageSize = 0x80;
    /// <summary>Bytes the identity map built by <see cref="WriteIdentityPageTables"/> covers.</summary>
    public const ulong IdentityMapSize = 1UL << 30;

    /// <summary>Flat 4 GiB code: execute/read, accessed (type 0xB); 32-bit (D=1) or 64-bit (L=1, D=0).</summary>
    public static X86Segment FlatCode(bool longMode) =>
        new(CodeSelector, Base: 0, Limit: 0xFFFF_FFFF, Type: 0xB, Present: true, Dpl: 0, DefaultBig: !longMode,
            Long: longMode, Granularity: true, CodeOrData: true);

    /// <summary>Flat 4 GiB data: read/write, accessed (type 0x3), D/B=1.</summary>
    public static X86Segment FlatData() =>
        new(DataSelector, Base: 0, Limit: 0xFFFF_FFFF, Type: 0x3, Present: true, Dpl: 0, DefaultBig: true, Long: false,
            Granularity: true, CodeOrData: true);

    /// <summary>A minimal busy TSS (type 0xB, 104 bytes at 0): VM entry requires TR to hold a busy TSS.</summary>
    public static X86Segment BusyTss() =>
        new(TssSelector, Base: 0, Limit: 0x67, Type: 0xB, Present: true, Dpl: 0, DefaultBig: false, Long: false,
            Granularity: false, CodeOrData: false);

    /// <summary>Encodes a segment as an 8-byte GDT descriptor (Intel SDM vol. 3, 3.4.5).</summary>
    public static ulong EncodeDescriptor(X86Segment s)
    {
        ulong limit = s.Granularity ? s.Limit >> 12 : s.Limit;
        ulong access = s.Type & 0xFUL
                       | (s.CodeOrData ? 1UL << 4 : 0)
                       | ((ulong)(s.Dpl & 3) << 5)
                       | (s.Present ? 1UL << 7 : 0);
        ulong flags = (s.Long ? 1UL << 1 : 0) | (s.DefaultBig ? 1UL << 2 : 0) | (s.Granularity ? 1UL << 3 : 0);
        return (limit & 0xFFFF)
               | ((s.Base & 0xFF_FFFF) << 16)
               | (access << 40)
               | (((limit >> 16) & 0xF) << 48)
               | (flags << 52)
               | (((s.Base >> 24) & 0xFF) << 56);
    }

    /// <summary>Writes the GDT (null, TSS, code, data) and an empty IDT; returns (GDT limit, IDT limit).</summary>
    public static (ushort GdtLimit, ushort IdtLimit) WriteDescriptorTables(GuestMemory memory, X86Segment code, X86Segment data,
        X86Segment task)
    {
        Span<byte> gdt = memory.GetSpan(new GuestAddress(X86Layout.GdtAddress), GdtEntries * 8);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[TssSelector..], EncodeDescriptor(task));
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[CodeSelector..], EncodeDescriptor(code));
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[DataSelector..], EncodeDescriptor(data));
        // An IDT with one null gate: any exception before the kernel installs its own IDT becomes a triple fault,
        // which the VMM sees as a shutdown exit instead of the guest running off into garbage.
        memory.GetSpan(new GuestAddress(X86Layout.IdtAddress), 8).Clear();
        return (GdtEntries * 8 - 1, 7);
    }

    /// <summary>
    /// Identity-maps guest-physical 0..1 GiB with 2 MiB pages: PML4[0] → PDPT[0] → PD[0..511]
    /// (at <see cref="X86Layout.Pml4Address"/>, <see cref="X86Layout.PdptAddress"/>, <see cref="X86Layout.PdAddress"/>).
    /// </summary>
    public static void WriteIdentityPageTables(GuestMemory memory)
    {
        Span<byte> pml4 = memory.GetSpan(new GuestAddress(X86Layout.Pml4Address), 0x1000);
        Span<byte> pdpt = memory.GetSpan(new GuestAddress(X86Layout.PdptAddress), 0x1000);
        Span<byte> pd = memory.GetSpan(new GuestAddress(X86Layout.PdAddress), 0x1000);
        pml4.Clear();
        pdpt.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(pml4, X86Layout.PdptAddress | PtePresent | PteWritable);
        BinaryPrimitives.WriteUInt64LittleEndian(pdpt, X86Layout.PdAddress | PtePresent | PteWritable);
        for (int i = 0; i < 512; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(pd[(i * 8)..], ((ulong)i << 21) | PtePresent | PteWritable | PtePageSize);
        }
    }

    /// <summary>
    /// 32-bit flat protected mode, paging off, interrupts off: the state for PVH (<paramref name="rbx"/> =
    /// hvm_start_info) and for the 32-bit boot protocol (<paramref name="rsi"/> = boot_params; EBP/EDI/EBX zero).
    /// Writes the GDT/IDT.
    /// </summary>
    public static X86BootCpuState ProtectedMode32(GuestMemory memory, ulong entry, ulong rbx, ulong rsi, string entryKind) =>
        FlatSegmentsState(memory, longMode: false, entry, Cr0ProtectionEnable | Cr0ExtensionType, entryKind) with
        {
            Rbx = rbx,
            Rsi = rsi,
        };

    /// <summary>
    /// 64-bit mode with the 1 GiB identity map (CR0.PG|PE, CR4.PAE, EFER.LME|LMA), RSI = boot_params, stack at
    /// <see cref="X86Layout.BootStackPointer"/>. Writes the GDT/IDT and the page tables.
    /// </summary>
    public static X86BootCpuState LongMode(GuestMemory memory, ulong entry, ulong rsi, string entryKind)
    {
        X86BootCpuState state = FlatSegmentsState(memory, longMode: true, entry,
            Cr0ProtectionEnable | Cr0ExtensionType | Cr0Paging, entryKind);
        WriteIdentityPageTables(memory);
        return state with
        {
            Rsi = rsi,
            Rsp = X86Layout.BootStackPointer,
            Rbp = X86Layout.BootStackPointer,
            Cr3 = X86Layout.Pml4Address,
            Cr4 = Cr4Pae,
            Efer = EferLme | EferLma,
        };
    }

    /// <summary>What both entry states share: flat code and data segments, a busy TSS, the GDT/IDT that describe them
    /// (written to guest memory), interrupts off; the caller adds its registers and paging.</summary>
    private static X86BootCpuState FlatSegmentsState(GuestMemory memory, bool longMode, ulong entry, ulong cr0, string entryKind)
    {
        X86Segment code = FlatCode(longMode), data = FlatData(), task = BusyTss();
        (ushort gdtLimit, ushort idtLimit) = WriteDescriptorTables(memory, code, data, task);
        return new X86BootCpuState
        {
            Rip = entry,
            Rflags = 0x2,
            Cr0 = cr0,
            Code = code,
            Data = data,
            Task = task,
            GdtBase = X86Layout.GdtAddress,
            GdtLimit = gdtLimit,
            IdtBase = X86Layout.IdtAddress,
            IdtLimit = idtLimit,
            EntryKind = entryKind,
        };
    }
}
