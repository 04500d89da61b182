using Vmm.Core.Memory;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// A popped descriptor chain: a small storable handle (queue, reset generation, head index and the totals measured
/// when it was validated). Keep it in a field or an array to complete the request later — e.g. an event buffer held
/// until an event occurs — then obtain its spans again (<see cref="WritableSegments"/>, <see cref="CreateWriter"/>)
/// and return it with <see cref="VirtQueue.AddUsed(in DescriptorChain, uint)"/> or <see cref="Complete"/>.
/// <para>Segments are spans straight over guest RAM: no copies. Each walk re-reads the descriptors and re-applies
/// every check, so a driver that rewrites a chain it no longer owns only makes the walk end early
/// (<see cref="ChainReader.Error"/>/<see cref="ChainWriter.Error"/>); it can never redirect the device outside guest
/// RAM. The totals below are those of the validating walk at pop time.</para>
/// </summary>
public readonly struct DescriptorChain
{
    internal DescriptorChain(VirtQueue queue, int generation, ushort headIndex, uint readableLength, uint writableLength,
        ushort readableCount, ushort writableCount)
    {
        Queue = queue;
        Generation = generation;
        HeadIndex = headIndex;
        ReadableLength = readableLength;
        WritableLength = writableLength;
        ReadableCount = readableCount;
        WritableCount = writableCount;
    }

    /// <summary>The queue this chain was popped from; null for <c>default</c>.</summary>
    public VirtQueue? Queue { get; }

    internal int Generation { get; }

    /// <summary>Index of the chain's first descriptor: the id reported in the used ring.</summary>
    public ushort HeadIndex { get; }

    /// <summary>Total bytes of the device-readable (driver → device) buffers.</summary>
    public uint ReadableLength { get; }

    /// <summary>Total bytes of the device-writable (device → driver) buffers.</summary>
    public uint WritableLength { get; }

    /// <summary>Number of device-readable buffers (saturating at 65535).</summary>
    public ushort ReadableCount { get; }

    /// <summary>Number of device-writable buffers (saturating at 65535).</summary>
    public ushort WritableCount { get; }

    /// <summary>False for <c>default</c> and for a chain whose queue was reset since it was popped.</summary>
    public bool IsValid => Queue is not null && Queue.Generation == Generation;

    /// <summary>All segments in chain order.</summary>
    public SegmentEnumerator Segments => new(this);

    /// <summary>The device-readable buffers in order, as read-only spans over guest RAM.</summary>
    public ReadableSegmentEnumerator ReadableSegments => new(this);

    /// <summary>The device-writable buffers in order, as spans over guest RAM.</summary>
    public WritableSegmentEnumerator WritableSegments => new(this);

    /// <summary>A cursor over the readable bytes, crossing segment boundaries.</summary>
    public ChainReader CreateReader() => new(this);

    /// <summary>A cursor over the writable bytes, crossing segment boundaries. May be created any time before the
    /// chain is completed, e.g. long after the pop.</summary>
    public ChainWriter CreateWriter() => new(this);

    /// <summary>Shorthand for <c>Queue.AddUsed(this, writtenLength)</c>.</summary>
    public VirtQueueError Complete(uint writtenLength) =>
        Queue is null ? VirtQueueError.StaleChain : Queue.AddUsed(this, writtenLength);

    /// <summary>One buffer of a chain.</summary>
    public readonly ref struct Segment
    {
        internal Segment(Span<byte> span, GuestAddress address, bool isWritable)
        {
            Span = span;
            Address = address;
            IsWritable = isWritable;
        }

        /// <summary>The buffer over guest RAM. Writing to a device-readable buffer is a device bug.</summary>
        public Span<byte> Span { get; }

        public GuestAddress Address { get; }

        public bool IsWritable { get; }
    }

    /// <summary>Enumerates <see cref="Segment"/>s; <see cref="Error"/> tells why it stopped early.</summary>
    public ref struct SegmentEnumerator
    {
        private DescriptorWalker _walker;

        internal SegmentEnumerator(scoped in DescriptorChain chain) => _walker = new DescriptorWalker(chain);

        public readonly Segment Current => new(_walker.Current, _walker.CurrentAddress, _walker.CurrentIsWritable);

        public readonly VirtQueueError Error => _walker.Error;

        public readonly SegmentEnumerator GetEnumerator() => this;

        public bool MoveNext() => _walker.MoveNext();
    }

    /// <summary>Enumerates the device-readable buffers.</summary>
    public ref struct ReadableSegmentEnumerator
    {
        private DescriptorWalker _walker;

        internal ReadableSegmentEnumerator(scoped in DescriptorChain chain) => _walker = new DescriptorWalker(chain);

        public readonly ReadOnlySpan<byte> Current => _walker.Current;

        public readonly VirtQueueError Error => _walker.Error;

        public readonly ReadableSegmentEnumerator GetEnumerator() => this;

        // Readable buffers all come first (checked by the walker), so the first writable one ends the sequence.
        public bool MoveNext() => _walker.MoveNext() && !_walker.CurrentIsWritable;
    }

    /// <summary>Enumerates the device-writable buffers, in total never more than the pop-time
    /// <see cref="WritableLength"/> (a buffer the driver enlarged after the pop is cut there), so filling every
    /// segment yields a length <see cref="VirtQueue.AddUsed(in DescriptorChain, uint)"/> accepts.</summary>
    public ref struct WritableSegmentEnumerator
    {
        private DescriptorWalker _walker;
        private Span<byte> _current;
        private uint _remaining;

        internal WritableSegmentEnumerator(scoped in DescriptorChain chain)
        {
            _walker = new DescriptorWalker(chain);
            _remaining = chain.WritableLength;
        }

        public readonly Span<byte> Current => _current;

        public readonly VirtQueueError Error => _walker.Error;

        public readonly WritableSegmentEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            _current = default;
            while (_remaining > 0 && _walker.MoveNext())
            {
                if (_walker.CurrentIsWritable)
                {
                    Span<byte> segment = _walker.Current;
                    _current = (uint)segment.Length > _remaining ? segment[..(int)_remaining] : segment;
                    _remaining -= (uint)_current.Length;
                    return true;
                }
            }
            return false;
        }
    }
}
