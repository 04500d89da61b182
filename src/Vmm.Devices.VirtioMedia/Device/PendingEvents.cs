using System.Buffers.Binary;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// Events waiting for an eventq buffer. The driver posts only 16 buffers, so events are held here (never blocking
/// the producer) and handed out in order as buffers come back. Entries live in pooled 608-byte arrays: no
/// allocation per event once the pool has warmed up. Thread-safe.
/// <para>Bounded, because a hostile driver can stop posting eventq buffers while provoking events: control events
/// are coalesced per (session, control id) — a newer one replaces the pending one and moves to the tail, change
/// flags merged, as V4L2's one-element per-subscription queue does — and once <see cref="MaxEvents"/> or
/// <see cref="MaxBytes"/> is reached the oldest V4L2 event (type EVENT) is dropped and counted in
/// <see cref="DroppedCount"/>. DQBUF events (bounded by each session's buffer count) are never dropped for room;
/// when the cap is full of them a new DQBUF is refused (<see cref="Enqueue"/> returns false) and the caller fails
/// that session. ERROR events (at most one per session) are always admitted.</para>
/// </summary>
public sealed class PendingEvents
{
    /// <summary>Default cap on pending events.</summary>
    public const int DefaultMaxEvents = 4096;

    /// <summary>Default cap on pending event bytes.</summary>
    public const long DefaultMaxBytes = 4L << 20;

    // Offsets inside an encoded EVENT event: the 8-byte header, then struct v4l2_event.
    private const int V4l2EventOffset = VirtioMediaWire.EventHeaderSize;
    private const int V4l2TypeOffset = V4l2EventOffset + 0;
    private const int CtrlChangesOffset = V4l2EventOffset + 8;
    private const int V4l2IdOffset = V4l2EventOffset + 96;
    // A DQBUF event's v4l2_buffer.type: the buffer follows the header, its type is its second word.
    private const int DqbufBufferTypeOffset = VirtioMediaWire.EventHeaderSize + 4;

    private readonly object _lock = new();
    private readonly LinkedList<Entry> _queue = new();          // delivery order, all events
    private readonly LinkedList<Entry> _droppable = new();      // the EVENT-type entries, oldest first
    private readonly Dictionary<uint, LinkedList<Entry>> _bySession = new();
    private readonly Dictionary<ulong, Entry> _ctrlBySessionAndId = new();
    private readonly Stack<Entry> _pool = new();
    private readonly Stack<LinkedList<Entry>> _sessionListPool = new();
    private long _bytes;
    private long _dropped;

    private sealed class Entry
    {
        public readonly byte[] Bytes = new byte[VirtioMediaWire.EventMaxSize];
        public readonly LinkedListNode<Entry> QueueNode;
        public readonly LinkedListNode<Entry> SessionNode;
        public readonly LinkedListNode<Entry> DroppableNode;
        public uint SessionId;
        public VirtioMediaEventType Type;
        public int Length;
        public ulong CtrlKey;
        public bool IsCtrl;

        public Entry()
        {
            QueueNode = new LinkedListNode<Entry>(this);
            SessionNode = new LinkedListNode<Entry>(this);
            DroppableNode = new LinkedListNode<Entry>(this);
        }
    }

    /// <summary>Creates a queue with the default caps.</summary>
    public PendingEvents()
        : this(DefaultMaxEvents, DefaultMaxBytes)
    {
    }

    /// <summary>Creates a queue holding at most <paramref name="maxEvents"/> events and
    /// <paramref name="maxBytes"/> encoded bytes (ERROR events aside).</summary>
    public PendingEvents(int maxEvents, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEvents, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, (long)VirtioMediaWire.EventMaxSize);
        MaxEvents = maxEvents;
        MaxBytes = maxBytes;
    }

    /// <summary>Raised (outside the lock) after an event was added, so the device can deliver it.</summary>
    public event Action? Added;

    public int MaxEvents { get; }

    public long MaxBytes { get; }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Encoded bytes currently pending.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Events discarded for room (oldest V4L2 events) or refused (DQBUF with the cap full) so far.
    /// Coalesced control events are not counted: their newest value is still delivered.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>Appends an encoded event (header included). Returns false when it was refused: only a DQBUF event
    /// with the cap full of undroppable events, or an event longer than <see cref="VirtioMediaWire.EventMaxSize"/>.
    /// </summary>
    public bool Enqueue(uint sessionId, VirtioMediaEventType type, ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length > VirtioMediaWire.EventMaxSize)
        {
            Interlocked.Increment(ref _dropped);
            return false;
        }
        lock (_lock)
        {
            bool isCtrl = type == VirtioMediaEventType.Event && encoded.Length >= V4l2IdOffset + 4
                && BinaryPrimitives.ReadUInt32LittleEndian(encoded[V4l2TypeOffset..]) == V4l2Const.EventCtrl;
            if (isCtrl)
            {
                ulong key = ((ulong)sessionId << 32) | BinaryPrimitives.ReadUInt32LittleEndian(encoded[V4l2IdOffset..]);
                if (_ctrlBySessionAndId.TryGetValue(key, out Entry? pending))
                {
                    // Replace in place and move to the tail; the driver sees every kind of change since its last read.
                    uint changes = BinaryPrimitives.ReadUInt32LittleEndian(pending.Bytes.AsSpan(CtrlChangesOffset));
                    _bytes += encoded.Length - pending.Length;
                    encoded.CopyTo(pending.Bytes);
                    pending.Length = encoded.Length;
                    Span<byte> merged = pending.Bytes.AsSpan(CtrlChangesOffset, 4);
                    BinaryPrimitives.WriteUInt32LittleEndian(merged, BinaryPrimitives.ReadUInt32LittleEndian(merged) | changes);
                    _queue.Remove(pending.QueueNode);
                    _queue.AddLast(pending.QueueNode);
                    _droppable.Remove(pending.DroppableNode);
                    _droppable.AddLast(pending.DroppableNode);
                    goto added;
                }
            }
            if (type != VirtioMediaEventType.Error)
            {
                while (_queue.Count >= MaxEvents || _bytes + encoded.Length > MaxBytes)
                {
                    if (_droppable.First is not { } oldest)
                    {
                        if (type == VirtioMediaEventType.Dqbuf)
                        {
                            Interlocked.Increment(ref _dropped);
                            return false;
                        }
                        // A V4L2 event with the cap full of DQBUF/ERROR events: the newest V4L2 event is dropped.
                        Interlocked.Increment(ref _dropped);
                        return true;
                    }
                    RemoveLocked(oldest.Value);
                    Interlocked.Increment(ref _dropped);
                }
            }
            Entry e = _pool.Count > 0 ? _pool.Pop() : new Entry();
            e.SessionId = sessionId;
            e.Type = type;
            e.Length = encoded.Length;
            e.IsCtrl = isCtrl;
            encoded.CopyTo(e.Bytes);
            _queue.AddLast(e.QueueNode);
            if (type == VirtioMediaEventType.Event)
            {
                _droppable.AddLast(e.DroppableNode);
            }
            if (isCtrl)
            {
                e.CtrlKey = ((ulong)sessionId << 32) | BinaryPrimitives.ReadUInt32LittleEndian(encoded[V4l2IdOffset..]);
                _ctrlBySessionAndId[e.CtrlKey] = e;
            }
            if (!_bySession.TryGetValue(sessionId, out LinkedList<Entry>? list))
            {
                list = _sessionListPool.Count > 0 ? _sessionListPool.Pop() : new LinkedList<Entry>();
                _bySession[sessionId] = list;
            }
            list.AddLast(e.SessionNode);
            _bytes += e.Length;
        }
    added:
        Added?.Invoke();
        return true;
    }

    /// <summary>Copies the oldest event into <paramref name="destination"/> and removes it; returns its length, or 0
    /// when there is none. An event larger than the destination stays first in line and -1 is returned: the
    /// driver's buffers are 608 bytes, so only a broken driver posts a smaller one, and that must not cost an event
    /// (a lost DQBUF leaves the guest waiting for a buffer the device has filled).</summary>
    public int TryDequeue(Span<byte> destination)
    {
        lock (_lock)
        {
            LinkedListNode<Entry>? node = _queue.First;
            if (node is null)
            {
                return 0;
            }
            Entry e = node.Value;
            if (e.Length > destination.Length)
            {
                return -1;
            }
            e.Bytes.AsSpan(0, e.Length).CopyTo(destination);
            RemoveLocked(e);
            return e.Length;
        }
    }

    /// <summary>Removes the session's undelivered events of <paramref name="type"/> (all types when null); DQBUF events
    /// only of buffers of <paramref name="bufferType"/> when given (one queue of a memory-to-memory session). Walks
    /// only that session's events.</summary>
    public void Drop(uint sessionId, VirtioMediaEventType? type, uint? bufferType = null)
    {
        lock (_lock)
        {
            if (!_bySession.TryGetValue(sessionId, out LinkedList<Entry>? list))
            {
                return;
            }
            LinkedListNode<Entry>? node = list.First;
            while (node is not null)
            {
                LinkedListNode<Entry>? next = node.Next;
                if ((type is null || node.Value.Type == type) && (bufferType is null || DqbufBufferType(node.Value) == bufferType))
                {
                    RemoveLocked(node.Value);
                }
                node = next;
            }
        }
    }

    // The v4l2_buffer type of a DQBUF event, or null.
    private static uint? DqbufBufferType(Entry e) =>
        e.Type == VirtioMediaEventType.Dqbuf && e.Length >= DqbufBufferTypeOffset + 4
            ? BinaryPrimitives.ReadUInt32LittleEndian(e.Bytes.AsSpan(DqbufBufferTypeOffset))
            : null;

    public void Clear()
    {
        lock (_lock)
        {
            while (_queue.First is { } node)
            {
                RemoveLocked(node.Value);
            }
        }
    }

    private void RemoveLocked(Entry e)
    {
        _queue.Remove(e.QueueNode);
        if (e.DroppableNode.List is not null)
        {
            _droppable.Remove(e.DroppableNode);
        }
        if (e.IsCtrl)
        {
            _ctrlBySessionAndId.Remove(e.CtrlKey);
            e.IsCtrl = false;
        }
        LinkedList<Entry> list = e.SessionNode.List!;
        list.Remove(e.SessionNode);
        if (list.Count == 0)
        {
            _bySession.Remove(e.SessionId);
            _sessionListPool.Push(list);
        }
        _bytes -= e.Length;
        _pool.Push(e);
    }
}
