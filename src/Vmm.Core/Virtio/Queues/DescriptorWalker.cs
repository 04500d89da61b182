using Vmm.Core.Memory;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// Walks a chain's descriptors in place, reading each 16-byte descriptor once into locals and checking it before
/// use. Bounded: at most queue-size descriptors in the main table plus at most the indirect table's entry count,
/// whatever the driver writes (a loop ends with <see cref="VirtQueueError.ChainTooLong"/>). The first violation
/// stops the walk and is kept in <see cref="Error"/>.
/// </summary>
internal ref struct DescriptorWalker
{
    private readonly GuestMemory? _memory;
    private readonly bool _indirectAllowed;
    private ReadOnlySpan<byte> _table;
    private int _tableEntries;
    private int _index;
    private int _ttl;
    private bool _inIndirect;
    private bool _done;
    private bool _seenWritable;
    private uint _total;

    public DescriptorWalker(scoped in DescriptorChain chain)
    {
        VirtQueue? queue = chain.Queue;
        if (queue is null || queue.Generation != chain.Generation || queue.Memory is null)
        {
            _done = true;
            Error = VirtQueueError.StaleChain;
            return;
        }
        _memory = queue.Memory;
        _indirectAllowed = queue.IndirectEnabled;
        _table = queue.DescriptorTableSpan;
        _tableEntries = _table.Length / VirtqDescriptor.Size;
        _index = chain.HeadIndex;
        _ttl = _tableEntries;
        if (_index >= _tableEntries)
        {
            _done = true;
            Error = VirtQueueError.HeadIndexOutOfRange;
        }
    }

    public Span<byte> Current { get; private set; }

    public GuestAddress CurrentAddress { get; private set; }

    public bool CurrentIsWritable { get; private set; }

    public VirtQueueError Error { get; private set; }

    public bool MoveNext()
    {
        while (!_done)
        {
            if (_ttl == 0)
            {
                return Stop(VirtQueueError.ChainTooLong);
            }
            _ttl--;
            // _index < _tableEntries is an invariant (checked for the head and for every next), so the slice is
            // inside the table.
            VirtqDescriptor d = VirtqDescriptor.Read(_table.Slice(_index * VirtqDescriptor.Size, VirtqDescriptor.Size));
            if (d.IsIndirect)
            {
                if (_inIndirect)
                {
                    return Stop(VirtQueueError.IndirectNested);
                }
                if (!_indirectAllowed)
                {
                    return Stop(VirtQueueError.IndirectNotNegotiated);
                }
                if (d.HasNext)
                {
                    return Stop(VirtQueueError.IndirectWithNext);
                }
                // The WRITE flag on the indirect descriptor itself is ignored (virtio 1.2 §2.7.5.3.2).
                if (d.Length == 0 || d.Length % VirtqDescriptor.Size != 0 || d.Length / VirtqDescriptor.Size > 65536)
                {
                    return Stop(VirtQueueError.IndirectBadLength);
                }
                if (!_memory!.TryGetSpan(new GuestAddress(d.Address), d.Length, out Span<byte> table))
                {
                    return Stop(VirtQueueError.BufferOutsideMemory);
                }
                _table = table;
                _tableEntries = (int)(d.Length / VirtqDescriptor.Size);
                _ttl = _tableEntries;
                _index = 0;
                _inIndirect = true;
                continue;
            }
            if (!_memory!.TryGetSpan(new GuestAddress(d.Address), d.Length, out Span<byte> buffer))
            {
                return Stop(VirtQueueError.BufferOutsideMemory);
            }
            if (d.IsWritable)
            {
                _seenWritable = true;
            }
            else if (_seenWritable)
            {
                return Stop(VirtQueueError.ReadableAfterWritable);
            }
            uint total = _total + d.Length;
            if (total < _total)
            {
                return Stop(VirtQueueError.TotalLengthOverflow);
            }
            _total = total;
            if (d.HasNext)
            {
                if (d.Next >= _tableEntries)
                {
                    return Stop(VirtQueueError.NextIndexOutOfRange);
                }
                _index = d.Next;
            }
            else
            {
                _done = true;
            }
            Current = buffer;
            CurrentAddress = new GuestAddress(d.Address);
            CurrentIsWritable = d.IsWritable;
            return true;
        }
        return false;
    }

    private bool Stop(VirtQueueError error)
    {
        _done = true;
        Error = error;
        Current = default;
        return false;
    }
}
