using Vmm.Core.Memory;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>
/// Where the payload of one memory plane of an OUTPUT buffer is read from, the read side of
/// <see cref="PlaneDestination"/>: a contiguous span (an MMAP buffer in the shared-memory region, read in place) or
/// guest RAM segments (a SHARED_PAGES buffer), already cut to the bytes the application said it queued.
/// </summary>
public readonly ref struct PlaneSource
{
    private readonly ReadOnlySpan<byte> _contiguous;
    private readonly GuestMemory? _memory;
    private readonly ReadOnlySpan<GuestSegment> _segments;
    private readonly long _offset;

    /// <summary>A contiguous payload.</summary>
    public PlaneSource(ReadOnlySpan<byte> contiguous)
    {
        _contiguous = contiguous;
        Length = contiguous.Length;
    }

    /// <summary><paramref name="length"/> bytes from <paramref name="offset"/> of a scatter list in guest RAM whose
    /// segments are already validated as guest RAM.</summary>
    public PlaneSource(GuestMemory memory, ReadOnlySpan<GuestSegment> segments, long offset, long length)
    {
        _memory = memory;
        _segments = segments;
        _offset = offset;
        Length = length;
    }

    /// <summary>Payload bytes.</summary>
    public long Length { get; }

    /// <summary>True when <see cref="Contiguous"/> is the whole payload (no copy is needed to read it).</summary>
    public bool IsContiguous => _memory is null;

    /// <summary>The payload when contiguous; empty otherwise.</summary>
    public ReadOnlySpan<byte> Contiguous => _contiguous;

    /// <summary>Copies the payload into <paramref name="destination"/> (at most its length) and returns the bytes
    /// copied. A segment that is no longer guest RAM reads as zeros.</summary>
    public int CopyTo(Span<byte> destination)
    {
        int total = (int)Math.Min(destination.Length, Length);
        if (_memory is null)
        {
            _contiguous[..total].CopyTo(destination);
            return total;
        }
        destination = destination[..total];
        long skip = _offset;
        foreach (GuestSegment seg in _segments)
        {
            if (destination.IsEmpty)
            {
                break;
            }
            if (skip >= seg.Length)
            {
                skip -= seg.Length;
                continue;
            }
            int n = (int)Math.Min(destination.Length, seg.Length - skip);
            if (_memory.TryGetSpan(new GuestAddress(seg.Start.Value + (ulong)skip), (ulong)n, out Span<byte> source))
            {
                source.CopyTo(destination);
            }
            else
            {
                destination[..n].Clear();
            }
            destination = destination[n..];
            skip = 0;
        }
        destination.Clear();
        return total;
    }
}
