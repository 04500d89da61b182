using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Kvm.Tests;

/// <summary>Builds a minimal 64-bit environment in a test guest's RAM: a GDT (code 0x08, data 0x10), identity page
/// tables for the first 1 GiB and 3–4 GiB (2 MiB pages) and an IDT whose gates the test fills in.</summary>
internal static class LongModeGuest
{
    public const ulong GdtAddress = 0x500;
    public const ulong IdtAddress = 0x4000;
    public const int IdtEntries = 256;

    public static X86BootCpuState Setup(GuestMemory memory, ulong rip)
    {
        memory.Write(new GuestAddress(GdtAddress), 0UL);
        memory.Write(new GuestAddress(GdtAddress + 8), 0x00AF9A000000FFFFUL); // 64-bit code, DPL0
        memory.Write(new GuestAddress(GdtAddress + 16), 0x00CF92000000FFFFUL); // data, DPL0
        memory.Write(new GuestAddress(0x9000), 0xA000UL | 0x3); // PML4[0] -> PDPT
        memory.Write(new GuestAddress(0xA000), 0xB000UL | 0x3); // PDPT[0] -> PD
        for (ulong i = 0; i < 512; i++)
        {
            memory.Write(new GuestAddress(0xB000 + i * 8), (i << 21) | 0x83); // 2 MiB, present, writable
            memory.Write(new GuestAddress(0xC000 + i * 8), (0xC000_0000 + (i << 21)) | 0x93); // 3–4 GiB, uncached (LAPIC)
        }
        memory.Write(new GuestAddress(0xA000 + 3 * 8), 0xC000UL | 0x3); // PDPT[3] -> PD for 3–4 GiB
        return new X86BootCpuState
        {
            Rip = rip,
            Rsp = 0x8000,
            Cr0 = 0x80000011, // PG | ET | PE
            Cr3 = 0x9000,
            Cr4 = 0x20, // PAE
            Efer = 0x500, // LME | LMA
            Code = new X86Segment(0x08, 0, 0xFFFFF, Type: 0xB, Present: true, Dpl: 0, DefaultBig: false, Long: true, Granularity: true, CodeOrData: true),
            Data = new X86Segment(0x10, 0, 0xFFFFF, Type: 0x3, Present: true, Dpl: 0, DefaultBig: true, Long: false, Granularity: true, CodeOrData: true),
            Task = new X86Segment(0x18, 0, 0xFFFFF, Type: 0xB, Present: true, Dpl: 0, DefaultBig: false, Long: false, Granularity: true, CodeOrData: false),
            GdtBase = GdtAddress,
            GdtLimit = 23,
            IdtBase = IdtAddress,
            IdtLimit = IdtEntries * 16 - 1,
            EntryKind = "64-bit (test)",
        };
    }

    /// <summary>Writes a 64-bit interrupt gate for <paramref name="vector"/> to <paramref name="handler"/>.</summary>
    public static void SetGate(GuestMemory memory, int vector, ulong handler)
    {
        ulong low = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16) & 0xFFFF) << 48;
        ulong high = handler >> 32;
        memory.Write(new GuestAddress(IdtAddress + (ulong)vector * 16), low);
        memory.Write(new GuestAddress(IdtAddress + (ulong)vector * 16 + 8), high);
    }
}
