using Vmm.Core.Memory;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>
/// One MMAP plane living in the shared-memory region: pages of the device's memfd, or a host driver's buffer mapped
/// into the region. Reference counted: the owning session holds one reference
/// until REQBUFS(0)/CLOSE, each guest mapping (CMD_MMAP … CMD_MUNMAP) one, and a frame being written one, so the
/// pages are returned to the allocator only when nobody can touch them — mappings outlive CLOSE as the protocol
/// requires.
/// </summary>
public sealed class MmapBuffer
{
    private readonly SharedMemoryRegion _region;
    private readonly Action<MmapBuffer> _free;
    private int _references = 1;

    /// <param name="region">The region the plane lives in.</param>
    /// <param name="offset">Page-aligned offset in the region.</param>
    /// <param name="length">Plane length as reported to the guest.</param>
    /// <param name="allocatedLength">Length rounded up to whole pages.</param>
    /// <param name="free">Called once, when the last reference is gone (gives the range back).</param>
    public MmapBuffer(SharedMemoryRegion region, ulong offset, ulong length, ulong allocatedLength, Action<MmapBuffer> free)
    {
        _region = region;
        _free = free;
        Offset = offset;
        Length = length;
        AllocatedLength = allocatedLength;
    }

    /// <summary>Page-aligned offset in region 0: the <c>driver_addr</c> answered to CMD_MMAP.</summary>
    public ulong Offset { get; }

    /// <summary>Plane length as reported to the guest.</summary>
    public ulong Length { get; }

    /// <summary>Length rounded up to whole pages.</summary>
    public ulong AllocatedLength { get; }

    /// <summary>True once every reference is gone and the range went back to the allocator.</summary>
    public bool IsFreed => Volatile.Read(ref _references) <= 0;

    /// <summary>The plane's bytes, exactly as the guest sees them through its mapping.</summary>
    public Span<byte> GetSpan() => _region.GetSpan(Offset, checked((int)Length));

    /// <summary>Takes a reference; false when the buffer was already freed.</summary>
    public bool TryAddReference()
    {
        int current;
        do
        {
            current = Volatile.Read(ref _references);
            if (current <= 0)
            {
                return false;
            }
        }
        while (Interlocked.CompareExchange(ref _references, current + 1, current) != current);
        return true;
    }

    /// <summary>Drops a reference; the last one frees the range.</summary>
    public void Release()
    {
        int left = Interlocked.Decrement(ref _references);
        if (left == 0)
        {
            _free(this);
        }
    }
}
