namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// vb2's queue-owner rule for a device whose buffer queue every open handle shares: the first handle that gets
/// buffers owns the queue, and until it frees them (REQBUFS(0), close) other handles get EBUSY for anything that
/// would change buffers, format or rate (v4l2-compliance checks it). One per device; thread-safe.
/// </summary>
public sealed class V4l2QueueOwnership
{
    private readonly object _lock = new();
    private V4l2BufferQueue? _owner;

    /// <summary>Makes <paramref name="queue"/> the owner unless another queue owns the device.</summary>
    public bool TryTake(V4l2BufferQueue queue)
    {
        lock (_lock)
        {
            if (_owner is not null && _owner != queue)
            {
                return false;
            }
            _owner = queue;
            return true;
        }
    }

    /// <summary>True when a queue other than <paramref name="queue"/> owns the device.</summary>
    public bool IsOwnedByOther(V4l2BufferQueue queue)
    {
        lock (_lock)
        {
            return _owner is not null && _owner != queue;
        }
    }

    /// <summary>Gives the device back when <paramref name="queue"/> owns it; idempotent.</summary>
    public void Release(V4l2BufferQueue queue)
    {
        lock (_lock)
        {
            if (_owner == queue)
            {
                _owner = null;
            }
        }
    }

    /// <summary>Forgets the owner (the device is going away).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _owner = null;
        }
    }
}
