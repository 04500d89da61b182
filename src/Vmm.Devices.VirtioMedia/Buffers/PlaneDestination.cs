using Vmm.Core.Memory;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>A validated guest-physical segment of a SHARED_PAGES plane.</summary>
public readonly record struct GuestSegment(GuestAddress Start, uint Length);

/// <summary>
/// Where one memory plane of a frame goes: either a contiguous span (an MMAP buffer in the shared-memory region)
/// or a list of guest RAM segments (a SHARED_PAGES buffer). Frames are written straight into it — there is no
/// intermediate frame buffer. Sequential writes keep a cursor, so walking a long scatter list stays linear.
/// </summary>
public ref struct PlaneDestination
{
    private readonly Span<byte> _contiguous;
    private readonly GuestMemory? _memory;
    private readonly ReadOnlySpan<GuestSegment> _segments;
    private int _cursorIndex;
    private long _cursorStart;

    /// <summary>A contiguous destination.</summary>
    public PlaneDestination(Span<byte> contiguous)
    {
        _contiguous = contiguous;
        Length = contiguous.Length;
    }

    /// <summary>A scatter-list destination in guest RAM; every segment must already be validated as guest RAM.</summary>
    public PlaneDestination(GuestMemory memory, ReadOnlySpan<GuestSegment> segments)
    {
        _memory = memory;
        _segments = segments;
        long total = 0;
        foreach (GuestSegment s in segments)
        {
            total += s.Length;
        }
        Length = total;
    }

    /// <summary>Total bytes.</summary>
    public long Length { get; }

    public readonly bool IsContiguous => _memory is null;

    /// <summary>The whole plane when contiguous (for in-place row replication); empty otherwise.</summary>
    public readonly Span<byte> Contiguous => _contiguous;

    /// <summary>Copies <paramref name="data"/> to <paramref name="offset"/>; bytes past the end are dropped.</summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (offset < 0 || offset >= Length)
        {
            return;
        }
        if (data.Length > Length - offset)
        {
            data = data[..(int)(Length - offset)];
        }
        if (_memory is null)
        {
            data.CopyTo(_contiguous[(int)offset..]);
            return;
        }
        if (offset < _cursorStart)
        {
            _cursorIndex = 0;
            _cursorStart = 0;
        }
        while (data.Length > 0 && _cursorIndex < _segments.Length)
        {
            GuestSegment seg = _segments[_cursorIndex];
            long segEnd = _cursorStart + seg.Length;
            if (offset >= segEnd)
            {
                _cursorStart = segEnd;
                _cursorIndex++;
                continue;
            }
            int within = (int)(offset - _cursorStart);
            int n = (int)Math.Min(data.Length, seg.Length - within);
            if (_memory.TryGetSpan(new GuestAddress(seg.Start.Value + (ulong)within), (ulong)n, out Span<byte> target))
            {
                data[..n].CopyTo(target);
            }
            data = data[n..];
            offset += n;
        }
    }
}
