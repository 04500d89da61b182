using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// A forward cursor over a chain's device-readable bytes, crossing buffer boundaries. <see cref="ReadSpan"/> hands
/// out guest memory in place (zero-copy); <see cref="Read"/> and <see cref="TryRead{T}"/> copy into the caller's
/// storage — the right choice for headers that are validated, since the guest may change shared bytes at any time.
/// </summary>
public ref struct ChainReader
{
    private DescriptorWalker _walker;
    private ReadOnlySpan<byte> _current;
    private bool _ended;
    private readonly uint _expected;

    internal ChainReader(scoped in DescriptorChain chain)
    {
        _walker = new DescriptorWalker(chain);
        _expected = chain.ReadableLength;
        _ended = _walker.Error != VirtQueueError.None;
    }

    /// <summary>Bytes consumed so far.</summary>
    public uint BytesRead { get; private set; }

    /// <summary>Readable bytes left according to the validating walk at pop time.</summary>
    public readonly uint Remaining => _expected - Math.Min(BytesRead, _expected);

    /// <summary>Why the walk ended early (the driver rewrote a chain it handed over); None normally.</summary>
    public readonly VirtQueueError Error => _walker.Error;

    /// <summary>The next contiguous piece of at most <paramref name="maxLength"/> bytes, in place; empty at the end.</summary>
    public ReadOnlySpan<byte> ReadSpan(int maxLength = int.MaxValue)
    {
        if (!Fill() || maxLength <= 0)
        {
            return default;
        }
        int n = Math.Min(maxLength, _current.Length);
        ReadOnlySpan<byte> piece = _current[..n];
        _current = _current[n..];
        BytesRead += (uint)n;
        return piece;
    }

    /// <summary>Copies up to <paramref name="destination"/>.Length bytes; returns how many were copied.</summary>
    public int Read(scoped Span<byte> destination)
    {
        int copied = 0;
        while (copied < destination.Length)
        {
            ReadOnlySpan<byte> piece = ReadSpan(destination.Length - copied);
            if (piece.IsEmpty)
            {
                break;
            }
            piece.CopyTo(destination[copied..]);
            copied += piece.Length;
        }
        return copied;
    }

    /// <summary>Copies exactly <paramref name="destination"/>.Length bytes, or returns false (consuming nothing when
    /// the chain is known to be too short).</summary>
    public bool TryRead(scoped Span<byte> destination) =>
        (uint)destination.Length <= Remaining && Read(destination) == destination.Length;

    /// <summary>Reads an unmanaged little-endian value (a wire struct) by copy.</summary>
    public bool TryRead<T>(out T value) where T : unmanaged
    {
        value = default;
        return TryRead(MemoryMarshal.AsBytes(new Span<T>(ref value)));
    }

    /// <summary>Skips <paramref name="count"/> bytes; false when the chain ended first.</summary>
    public bool Skip(uint count)
    {
        while (count > 0)
        {
            ReadOnlySpan<byte> piece = ReadSpan((int)Math.Min(count, int.MaxValue));
            if (piece.IsEmpty)
            {
                return false;
            }
            count -= (uint)piece.Length;
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Fill()
    {
        while (_current.IsEmpty)
        {
            // Readable buffers precede writable ones (checked by the walker), so a writable buffer ends the data.
            if (_ended || !_walker.MoveNext() || _walker.CurrentIsWritable)
            {
                _ended = true;
                return false;
            }
            _current = _walker.Current;
        }
        return true;
    }
}
