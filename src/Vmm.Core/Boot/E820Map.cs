using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>E820 memory types (arch/x86/include/asm/e820/types.h); PVH memmap types use the same numbers.</summary>
public enum E820Type : uint
{
    Ram = 1,
    Reserved = 2,
}

/// <summary>One entry of the guest's physical memory map.</summary>
public readonly record struct E820Entry(ulong Address, ulong Size, E820Type Type)
{
    public ulong End => Address + Size;
}

/// <summary>
/// The memory map handed to the kernel (boot_params e820_table, or the PVH memmap), derived from the actual guest
/// RAM regions:
/// <list type="bullet">
/// <item>RAM below the EBDA: 0 .. 0x9FC00;</item>
/// <item>reserved 0x9FC00 .. 0xA0000 (EBDA: the MP table lives there) and 0xF0000 .. 0x100000 (where a BIOS would be;
/// the kernel treats this range as firmware anyway);</item>
/// <item>RAM from 1 MiB to the end of each region, including the region above 4 GiB;</item>
/// <item>reserved: the PCI ECAM window (so the kernel never hands it out; MMCONFIG checks want it reserved).</item>
/// </list>
/// The VGA hole, the 32-bit PCI window, IOAPIC and LAPIC are simply absent (not RAM). RAM that overlaps the MMIO
/// hole is a configuration error.
/// </summary>
public static class E820Map
{
    private const ulong BiosAreaStart = 0xF0000;

    public static E820Entry[] Build(GuestMemory memory)
    {
        var entries = new List<E820Entry>();
        foreach (GuestRegion region in memory.Regions)
        {
            ulong start = region.Start.Value, end = region.End;
            if (start < X86Layout.FourGiB && end > X86Layout.MmioHoleStart)
            {
                throw new BootException(
                    $"guest RAM region 0x{start:x}-0x{end:x} overlaps the MMIO hole at 0x{X86Layout.MmioHoleStart:x}-4 GiB");
            }
            if (start < X86Layout.EbdaStart)
            {
                entries.Add(new E820Entry(start, Math.Min(end, X86Layout.EbdaStart) - start, E820Type.Ram));
            }
            ulong high = Math.Max(start, X86Layout.HighMemoryStart);
            if (end > high)
            {
                entries.Add(new E820Entry(high, end - high, E820Type.Ram));
            }
        }
        entries.Add(new E820Entry(X86Layout.EbdaStart, X86Layout.LowMemoryEnd - X86Layout.EbdaStart, E820Type.Reserved));
        entries.Add(new E820Entry(BiosAreaStart, X86Layout.HighMemoryStart - BiosAreaStart, E820Type.Reserved));
        entries.Add(new E820Entry(X86Layout.PciEcamStart, X86Layout.PciEcamSize, E820Type.Reserved));
        entries.Sort((a, b) => a.Address.CompareTo(b.Address));
        return entries.ToArray();
    }
}
