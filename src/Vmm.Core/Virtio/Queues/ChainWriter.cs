using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// A forward cursor over a chain's device-writable bytes, crossing buffer boundaries. <see cref="GetSpan"/> +
/// <see cref="Advance"/> let a producer fill guest memory in place (zero-copy); <see cref="Write"/> copies.
/// Report <see cref="BytesWritten"/> as the used length.
/// </summary>
public ref struct ChainWriter
{
    private DescriptorWalker _walker;
    private Span<byte> _current;
    private bool _ended;
    private readonly uint _expected;

    internal ChainWriter(scoped in DescriptorChain chain)
    {
        _walker = new DescriptorWalker(chain);
        _expected = chain.WritableLength;
        _ended = _walker.Error != VirtQueueError.None;
    }

    public uint BytesWritten { get; private set; }

    /// <summary>Writable bytes left according to the validating walk at pop time.</summary>
    public readonly uint Remaining => _expected - Math.Min(BytesWritten, _expected);

    /// <summary>Why the walk ended early (the driver rewrote a chain it handed over); None normally.</summary>
    public readonly VirtQueueError Error => _walker.Error;

    /// <summary>The rest of the current writable buffer (moving to the next one when the current is full), in
    /// guest memory; empty when the chain is full. Never more than <see cref="Remaining"/> bytes, even if the driver
    /// enlarged a descriptor after the pop. Call <see cref="Advance"/> with the bytes produced.</summary>
    public Span<byte> GetSpan() => Fill() ? _current : default;

    /// <summary>Marks <paramref name="count"/> bytes of the last <see cref="GetSpan"/> as written.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> exceeds the span handed out (a device
    /// bug); <see cref="BytesWritten"/> therefore never exceeds the pop-time writable length.</exception>
    public void Advance(int count)
    {
        if ((uint)count > (uint)_current.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count));
        }
        _current = _current[count..];
        BytesWritten += (uint)count;
    }

    /// <summary>Copies all of <paramref name="data"/>, or returns false without writing when the chain is known to be
    /// too short (or, if the driver shortened the chain meanwhile, after writing what fitted).</summary>
    public bool Write(scoped ReadOnlySpan<byte> data)
    {
        if ((uint)data.Length > Remaining)
        {
            return false;
        }
        while (!data.IsEmpty)
        {
            Span<byte> target = GetSpan();
            if (target.IsEmpty)
            {
                return false;
            }
            int n = Math.Min(target.Length, data.Length);
            data[..n].CopyTo(target);
            Advance(n);
            data = data[n..];
        }
        return true;
    }

    /// <summary>Writes an unmanaged value (a wire struct) by copy.</summary>
    public bool Write<T>(in T value) where T : unmanaged =>
        Write(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    /// <summary>Leaves <paramref name="count"/> bytes untouched but counted (e.g. a header written later through a
    /// second writer); false when the chain ended first.</summary>
    public bool Skip(uint count)
    {
        while (count > 0)
        {
            Span<byte> target = GetSpan();
            if (target.IsEmpty)
            {
                return false;
            }
            int n = (int)Math.Min((uint)target.Length, count);
            Advance(n);
            count -= (uint)n;
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Fill()
    {
        while (_current.IsEmpty)
        {
            if (_ended || Remaining == 0)
            {
                return false;
            }
            if (!_walker.MoveNext())
            {
                _ended = true;
                return false;
            }
            if (_walker.CurrentIsWritable)
            {
                // The walk re-reads descriptors the driver may have rewritten since the pop: hand out no more than
                // the pop-time total, which is what AddUsed accepts (invariant: _current.Length <= Remaining).
                Span<byte> segment = _walker.Current;
                _current = (uint)segment.Length > Remaining ? segment[..(int)Remaining] : segment;
            }
        }
        return true;
    }
}
