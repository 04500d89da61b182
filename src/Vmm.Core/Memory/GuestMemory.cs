using System.Runtime.CompilerServices;

namespace Vmm.Core.Memory;

/// <summary>
/// Guest RAM: a handful of non-overlapping regions, each an anonymous host mapping. Every accessor checks that the
/// whole range lies inside a single region, so no guest-supplied address or length can make the VMM touch host
/// memory outside guest RAM. Spans handed out stay valid for the lifetime of this object (the VM's lifetime);
/// the guest may change the bytes under them at any time, so a value read twice may differ — read once, validate,
/// use the copy.
/// </summary>
public sealed unsafe class GuestMemory : IDisposable
{
    private readonly GuestRegion[] _regions;

    private GuestMemory(GuestRegion[] regions) => _regions = regions;

    public IReadOnlyList<GuestRegion> Regions => _regions;

    public ulong TotalSize
    {
        get
        {
            ulong total = 0;
            foreach (GuestRegion r in _regions)
            {
                total += r.Size;
            }
            return total;
        }
    }

    /// <summary>Creates RAM regions from (start, size) pairs; they must be page-aligned, non-empty and disjoint.</summary>
    public static GuestMemory CreateAnonymous(params ReadOnlySpan<(GuestAddress Start, ulong Size)> layout)
    {
        var sorted = layout.ToArray();
        Array.Sort(sorted, (a, b) => a.Start.CompareTo(b.Start));
        var regions = new GuestRegion[sorted.Length];
        ulong previousEnd = 0;
        try
        {
            for (int i = 0; i < sorted.Length; i++)
            {
                (GuestAddress start, ulong size) = sorted[i];
                if (size == 0 || (size & 0xFFF) != 0 || !start.IsAligned(0x1000) || !start.TryAdd(size, out _))
                {
                    throw new ArgumentException($"bad guest RAM region {start}+0x{size:x}");
                }
                if (i > 0 && start.Value < previousEnd)
                {
                    throw new ArgumentException($"guest RAM region {start} overlaps the previous one");
                }
                regions[i] = new GuestRegion(start, HostMapping.Anonymous(size));
                previousEnd = start.Value + size;
            }
        }
        catch
        {
            foreach (GuestRegion? r in regions)
            {
                r?.Mapping.Dispose();
            }
            throw;
        }
        return new GuestMemory(regions);
    }

    /// <summary>The region holding all of [address, address+length), or null.</summary>
    public GuestRegion? FindRegion(GuestAddress address, ulong length)
    {
        foreach (GuestRegion r in _regions)
        {
            if (r.Contains(address, length))
            {
                return r;
            }
        }
        return null;
    }

    public bool IsValidRange(GuestAddress address, ulong length) => FindRegion(address, length) is not null;

    /// <summary>A span over guest RAM for [address, address+length), or false if any byte lies outside one region.</summary>
    public bool TryGetSpan(GuestAddress address, ulong length, out Span<byte> span)
    {
        foreach (GuestRegion r in _regions)
        {
            if (length <= int.MaxValue && r.Contains(address, length))
            {
                // Safe: Contains proved [address, address+length) lies inside this region's live mapping.
                span = new Span<byte>((byte*)r.HostAddress + (address.Value - r.Start.Value), (int)length);
                return true;
            }
        }
        span = default;
        return false;
    }

    /// <summary>Like <see cref="TryGetSpan"/> but throws <see cref="GuestMemoryException"/>.</summary>
    public Span<byte> GetSpan(GuestAddress address, ulong length)
    {
        if (!TryGetSpan(address, length, out Span<byte> span))
        {
            ThrowOutside(address, length);
        }
        return span;
    }

    /// <summary>A reference to a naturally aligned value in guest RAM, for volatile/atomic ring-index accesses.</summary>
    public ref T GetRef<T>(GuestAddress address) where T : unmanaged
    {
        if (!address.IsAligned((ulong)sizeof(T)) && sizeof(T) <= 8)
        {
            ThrowOutside(address, (ulong)sizeof(T));
        }
        return ref Unsafe.As<byte, T>(ref GetSpan(address, (ulong)sizeof(T))[0]);
    }

    public T Read<T>(GuestAddress address) where T : unmanaged =>
        Unsafe.ReadUnaligned<T>(ref GetSpan(address, (ulong)sizeof(T))[0]);

    public void Write<T>(GuestAddress address, T value) where T : unmanaged =>
        Unsafe.WriteUnaligned(ref GetSpan(address, (ulong)sizeof(T))[0], value);

    public bool TryRead<T>(GuestAddress address, out T value) where T : unmanaged
    {
        if (TryGetSpan(address, (ulong)sizeof(T), out Span<byte> s))
        {
            value = Unsafe.ReadUnaligned<T>(ref s[0]);
            return true;
        }
        value = default;
        return false;
    }

    public bool TryWrite<T>(GuestAddress address, T value) where T : unmanaged
    {
        if (TryGetSpan(address, (ulong)sizeof(T), out Span<byte> s))
        {
            Unsafe.WriteUnaligned(ref s[0], value);
            return true;
        }
        return false;
    }

    /// <summary>Copies into guest RAM (boot-time loading; devices write in place through spans instead).</summary>
    public void WriteBytes(GuestAddress address, ReadOnlySpan<byte> data) => data.CopyTo(GetSpan(address, (ulong)data.Length));

    public void ReadBytes(GuestAddress address, Span<byte> destination) => GetSpan(address, (ulong)destination.Length).CopyTo(destination);

    public void Dispose()
    {
        foreach (GuestRegion r in _regions)
        {
            r.Mapping.Dispose();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowOutside(GuestAddress address, ulong length) => throw new GuestMemoryException(address, length);
}
