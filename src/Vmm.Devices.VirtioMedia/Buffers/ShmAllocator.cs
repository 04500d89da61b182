using Vmm.Core.Memory;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>
/// First-fit allocator of page-aligned ranges inside the MMAP shared-memory region (id 0). An allocation's offset is
/// both the <c>mem_offset</c> key the guest passes to mmap() and the <c>driver_addr</c> answered to CMD_MMAP, so
/// the device writes frames at exactly the bytes the guest maps: zero copies. Offsets stay below 4 GiB because
/// <c>mem_offset</c> is a u32 on the wire. Thread-safe.
/// </summary>
public sealed class ShmAllocator
{
    /// <summary>Page size of the guest mapping granularity.</summary>
    public const ulong PageSize = 4096;

    private readonly object _lock = new();
    // Free ranges sorted by offset, coalesced on free. Few entries: one per hole.
    private readonly List<(ulong Offset, ulong Length)> _free = [];

    public ShmAllocator(SharedMemoryRegion region)
    {
        Region = region;
        Limit = Math.Min(region.Size, 1UL << 32) & ~(PageSize - 1);
        _free.Add((0, Limit));
    }

    public SharedMemoryRegion Region { get; }

    /// <summary>End of the usable range (the region size capped at 4 GiB).</summary>
    public ulong Limit { get; }

    /// <summary>Bytes currently allocated.</summary>
    public ulong BytesInUse { get; private set; }

    /// <summary>Allocates <paramref name="length"/> bytes rounded up to whole pages; null when the region is full.</summary>
    public MmapBuffer? TryAllocate(ulong length)
    {
        if (length == 0 || length > Limit)
        {
            return null;
        }
        ulong rounded = (length + PageSize - 1) & ~(PageSize - 1);
        lock (_lock)
        {
            for (int i = 0; i < _free.Count; i++)
            {
                (ulong offset, ulong size) = _free[i];
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
                    _free[i] = (offset + rounded, size - rounded);
                }
                BytesInUse += rounded;
                return new MmapBuffer(this, offset, length, rounded);
            }
        }
        return null;
    }

    internal void Free(ulong offset, ulong rounded)
    {
        // Give the pages back to the kernel before reuse is not needed for correctness; new owners overwrite them.
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
