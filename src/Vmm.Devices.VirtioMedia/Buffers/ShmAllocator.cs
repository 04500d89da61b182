using Vmm.Core.Memory;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>
/// Allocates MMAP buffers out of a memfd-backed shared-memory region (id 0): page-aligned first fit. An allocation's
/// offset is both the <c>mem_offset</c> key the guest passes to mmap() and the <c>driver_addr</c> answered to
/// CMD_MMAP, so the device writes frames at exactly the bytes the guest maps: zero copies. Offsets stay below
/// 4 GiB because <c>mem_offset</c> is a u32 on the wire. Thread-safe.
/// </summary>
public sealed class ShmAllocator
{
    /// <summary>Page size of the guest mapping granularity.</summary>
    public const ulong PageSize = PageRangeAllocator.PageSize;

    private readonly PageRangeAllocator _ranges;

    public ShmAllocator(SharedMemoryRegion region)
    {
        Region = region;
        _ranges = new PageRangeAllocator(Math.Min(region.Size, 1UL << 32));
    }

    public SharedMemoryRegion Region { get; }

    /// <summary>End of the usable range (the region size capped at 4 GiB).</summary>
    public ulong Limit => _ranges.Limit;

    /// <summary>Bytes currently allocated.</summary>
    public ulong BytesInUse => _ranges.BytesInUse;

    /// <summary>Allocates <paramref name="length"/> bytes rounded up to whole pages; null when the region is full.</summary>
    public MmapBuffer? TryAllocate(ulong length)
    {
        if (!_ranges.TryAllocate(length, out ulong offset, out ulong rounded))
        {
            return null;
        }
        // New owners overwrite the pages, so nothing needs clearing on free.
        return new MmapBuffer(Region, offset, length, rounded, b => _ranges.Free(b.Offset, b.AllocatedLength));
    }
}
