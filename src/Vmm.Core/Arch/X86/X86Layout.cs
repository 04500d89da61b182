namespace Vmm.Core.Arch.X86;

/// <summary>
/// The guest-physical memory map of an x86_64 VM (no firmware, no ACPI). Low structures follow Firecracker's
/// choices so that a reader who knows one knows the other.
/// <code>
/// 0x0000_0500  GDT                    0x0000_7000  boot_params (zero page)
/// 0x0000_0520  IDT (empty)            0x0000_9000  PML4, 0xA000 PDPT, 0xB000 PD (identity map of 0–1 GiB)
/// 0x0000_6000  PVH hvm_start_info     0x0002_0000  kernel command line (up to 64 KiB)
/// 0x0009_FC00  MP table (EBDA)        0x0100_0000  kernel (ELF physical addresses)
/// RAM          0 .. min(mem, 3 GiB), the rest from 4 GiB up
/// 0xC000_0000  32-bit PCI MMIO window (BARs)       0xE000_0000  PCI ECAM (MMCONFIG), 256 MiB
/// 0xFEC0_0000  IOAPIC   0xFEE0_0000  LAPIC          0xFFFB_C000  KVM identity map, 0xFFFB_D000 TSS (3 pages)
/// 64-bit PCI MMIO window (shared-memory BARs) from the first 1 GiB boundary at or above max(4 GiB, RAM end).
/// </code>
/// </summary>
public static class X86Layout
{
    public const ulong GdtAddress = 0x500;
    public const ulong IdtAddress = 0x520;
    public const ulong PvhStartInfoAddress = 0x6000;
    public const ulong ZeroPageAddress = 0x7000;
    public const ulong Pml4Address = 0x9000;
    public const ulong PdptAddress = 0xA000;
    public const ulong PdAddress = 0xB000;
    public const ulong BootStackPointer = 0x8FF0;
    public const ulong CmdlineAddress = 0x20000;
    public const ulong CmdlineMaxSize = 0x10000;
    public const ulong EbdaStart = 0x9FC00;
    public const ulong MpTableAddress = EbdaStart;
    public const ulong LowMemoryEnd = 0xA0000;
    public const ulong HighMemoryStart = 0x100000;
    public const ulong KernelLoadAddress = 0x1000000;

    public const ulong MmioHoleStart = 0xC000_0000;
    public const ulong Pci32WindowStart = 0xC000_0000;
    public const ulong Pci32WindowSize = 0x2000_0000;
    public const ulong PciEcamStart = 0xE000_0000;
    public const ulong PciEcamSize = 0x1000_0000;
    public const ulong IoApicAddress = 0xFEC0_0000;
    public const ulong LocalApicAddress = 0xFEE0_0000;
    public const ulong KvmIdentityMapAddress = 0xFFFB_C000;
    public const ulong KvmTssAddress = 0xFFFB_D000;
    public const ulong FourGiB = 0x1_0000_0000;

    /// <summary>Start of the 64-bit PCI window for a VM with <paramref name="ramSize"/> bytes of RAM.</summary>
    public static ulong Pci64WindowStart(ulong ramSize)
    {
        ulong ramEnd = ramSize <= MmioHoleStart ? MmioHoleStart : FourGiB + (ramSize - MmioHoleStart);
        ulong start = Math.Max(FourGiB, ramEnd);
        const ulong oneGiB = 1UL << 30;
        return (start + oneGiB - 1) & ~(oneGiB - 1);
    }

    /// <summary>RAM regions (start, size) for <paramref name="ramSize"/> bytes, split around the MMIO hole.</summary>
    public static (ulong Start, ulong Size)[] RamRegions(ulong ramSize) =>
        ramSize <= MmioHoleStart
            ? [(0, ramSize)]
            : [(0, MmioHoleStart), (FourGiB, ramSize - MmioHoleStart)];

    /// <summary>Legacy ISA interrupt lines (GSIs) of the platform devices.</summary>
    public const int Com1Irq = 4;
    public const int Com1Port = 0x3F8;
    public const int I8042Port = 0x60;
    public const int DebugExitPort = 0x501;
    /// <summary>GSIs handed to PCI INTx pins (devices that do not enable MSI-X).</summary>
    public static ReadOnlySpan<int> PciIntxGsis => [5, 9, 10, 11];
}
