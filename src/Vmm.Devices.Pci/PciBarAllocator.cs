namespace Vmm.Devices.Pci;

/// <summary>
/// Hands out naturally aligned guest-physical ranges for BARs from a 32-bit and a 64-bit window. There is no
/// firmware, so the VMM places every BAR before boot; Linux keeps these assignments (it only reassigns on conflict).
/// </summary>
public sealed class PciBarAllocator
{
    private readonly ulong _end32;
    private readonly ulong _end64;
    private ulong _next32;
    private ulong _next64;

    public PciBarAllocator(ulong window32Start, ulong window32Size, ulong window64Start, ulong window64Size)
    {
        _next32 = window32Start;
        _end32 = checked(window32Start + window32Size);
        _next64 = window64Start;
        _end64 = checked(window64Start + window64Size);
        if (_end32 > 1UL << 32)
        {
            throw new ArgumentOutOfRangeException(nameof(window32Size), "32-bit window must end below 4 GiB");
        }
    }

    /// <summary>Places a BAR of <paramref name="size"/> (a power of two, ≥ 16) in the 64-bit window when
    /// <paramref name="is64Bit"/>, else in the 32-bit window.</summary>
    /// <exception cref="InvalidOperationException">The window is full.</exception>
    public ulong Allocate(ulong size, bool is64Bit)
    {
        if (size < 16 || (size & (size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "BAR size must be a power of two ≥ 16");
        }
        ref ulong next = ref is64Bit ? ref _next64 : ref _next32;
        ulong end = is64Bit ? _end64 : _end32;
        ulong start = (next + size - 1) & ~(size - 1);
        if (start < next || start > end || size > end - start)
        {
            throw new InvalidOperationException($"PCI {(is64Bit ? 64 : 32)}-bit window has no room for a 0x{size:x} BAR");
        }
        next = start + size;
        return start;
    }
}
