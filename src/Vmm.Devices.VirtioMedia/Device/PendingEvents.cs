using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// Events waiting for an eventq buffer. The driver posts only 16 buffers, so events are held here (never dropped,
/// never blocking the producer) and handed out in order as buffers come back. Entries live in pooled 608-byte
/// arrays: no allocation per event once the pool has warmed up. Thread-safe.
/// </summary>
public sealed class PendingEvents
{
    private readonly object _lock = new();
    private readonly LinkedList<Entry> _queue = new();
    private readonly Stack<LinkedListNode<Entry>> _pool = new();

    private sealed class Entry
    {
        public readonly byte[] Bytes = new byte[VirtioMediaWire.EventMaxSize];
        public uint SessionId;
        public VirtioMediaEventType Type;
        public int Length;
    }

    /// <summary>Raised (outside the lock) after an event was added, so the device can deliver it.</summary>
    public event Action? Added;

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

    /// <summary>Appends an encoded event (header included).</summary>
    public void Enqueue(uint sessionId, VirtioMediaEventType type, ReadOnlySpan<byte> encoded)
    {
        lock (_lock)
        {
            LinkedListNode<Entry> node = _pool.Count > 0 ? _pool.Pop() : new LinkedListNode<Entry>(new Entry());
            Entry e = node.Value;
            e.SessionId = sessionId;
            e.Type = type;
            e.Length = encoded.Length;
            encoded.CopyTo(e.Bytes);
            _queue.AddLast(node);
        }
        Added?.Invoke();
    }

    /// <summary>Copies the oldest event into <paramref name="destination"/> and removes it; returns its length, or 0
    /// when there is none. An event larger than the destination is still removed and reported as -1 (the driver's
    /// buffers are 608 bytes, so that only happens with a broken driver).</summary>
    public int TryDequeue(Span<byte> destination)
    {
        lock (_lock)
        {
            LinkedListNode<Entry>? node = _queue.First;
            if (node is null)
            {
                return 0;
            }
            _queue.RemoveFirst();
            _pool.Push(node);
            Entry e = node.Value;
            if (e.Length > destination.Length)
            {
                return -1;
            }
            e.Bytes.AsSpan(0, e.Length).CopyTo(destination);
            return e.Length;
        }
    }

    /// <summary>Removes the session's undelivered events of <paramref name="type"/> (all types when null).</summary>
    public void Drop(uint sessionId, VirtioMediaEventType? type)
    {
        lock (_lock)
        {
            LinkedListNode<Entry>? node = _queue.First;
            while (node is not null)
            {
                LinkedListNode<Entry>? next = node.Next;
                if (node.Value.SessionId == sessionId && (type is null || node.Value.Type == type))
                {
                    _queue.Remove(node);
                    _pool.Push(node);
                }
                node = next;
            }
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            while (_queue.First is { } node)
            {
                _queue.RemoveFirst();
                _pool.Push(node);
            }
        }
    }
}
