namespace Vmm.Core.Memory;

/// <summary>
/// First-fit allocator of page-aligned ranges in [0, limit): the address space of a shared-memory region. Free ranges
/// are kept sorted and coalesced; there are few of them (one per hole). Thread-safe.
/// </summary>
public sealed class PageRangeAllocator
{
    public const ulong PageSize = 4096;

    private readonly Lock _lock = new();
    private readonly List<(ulong Offset, ulong Length)> _free = [];

    public PageRangeAllocator(ulong limit)
    {
        Limit = limit & ~(PageSize - 1);
        if (Limit > 0)
        {
            _free.Add((0, Limit));
        }
    }

    /// <summary>End of the usable range.</summary>
    public ulong Limit { get; }

    /// <summary>Bytes currently allocated (whole pages).</summary>
    public ulong BytesInUse { get; private set; }

    public static ulong RoundUp(ulong length) => (length + PageSize - 1) & ~(PageSize - 1);

    /// <summary>Allocates <paramref name="length"/> bytes rounded up to whole pages; false when no hole is big enough.</summary>
    public bool TryAllocate(ulong length, out ulong offset, out ulong rounded)
    {
        offset = 0;
        rounded = 0;
        if (length == 0 || length > Limit)
        {
            return false;
        }
        rounded = RoundUp(length);
        lock (_lock)
        {
            for (int i = 0; i < _free.Count; i++)
            {
                (ulong start, ulong size) = _free[i];
                if (size < rounded)
                {
                    continue;
                }
                if (size == rounded)
                {
                    _free.RemoveAt(i);
                }
                else
                {
                    _free[i] = (start + rounded, size - rounded);
                }
                BytesInUse += rounded;
                offset = start;
                return true;
            }
        }
        return false;
    }

    /// <summary>Returns a range from <see cref="TryAllocate"/>.</summary>
    public void Free(ulong offset, ulong rounded)
    {
        lock (_lock)
        {
            BytesInUse -= rounded;
            int i = 0;
            while (i < _free.Count && _free[i].Offset < offset)
            {
                i++;
            }
            _free.Insert(i, (offset, rounded));
            // Coalesce with the next and the previous hole.
            if (i + 1 < _free.Count && _free[i].Offset + _free[i].Length == _free[i + 1].Offset)
            {
                _free[i] = (_free[i].Offset, _free[i].Length + _free[i + 1].Length);
                _free.RemoveAt(i + 1);
            }
            if (i > 0 && _free[i - 1].Offset + _free[i - 1].Length == _free[i].Offset)
            {
                _free[i - 1] = (_free[i - 1].Offset, _free[i - 1].Length + _free[i].Length);
                _free.RemoveAt(i);
            }
        }
    }
}
