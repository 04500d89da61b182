using Vmm.Devices.VirtioMedia.Backends;

namespace Vmm.Devices.VirtioMedia.Sessions;

/// <summary>Open sessions by id. Ids come from a counter and are never reused while the device lives (the spec
/// forbids reusing an id that is still open or errored-but-not-closed; never reusing is the simple way).
/// Thread-safe.</summary>
public sealed class SessionTable
{
    private readonly object _lock = new();
    private readonly Dictionary<uint, MediaSession> _sessions = [];
    private uint _nextId;

    /// <summary>Upper bound on simultaneously open sessions; OPEN beyond it fails with EMFILE.</summary>
    public int MaxSessions { get; init; } = MediaDeviceLimits.Default.MaxSessions;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _sessions.Count;
            }
        }
    }

    internal bool TryReserveId(out uint id)
    {
        lock (_lock)
        {
            id = 0;
            if (_sessions.Count >= MaxSessions || _nextId == uint.MaxValue)
            {
                return false;
            }
            id = _nextId++;
            return true;
        }
    }

    internal void Add(MediaSession session)
    {
        lock (_lock)
        {
            _sessions.Add(session.SessionId, session);
        }
    }

    public MediaSession? Find(uint id)
    {
        lock (_lock)
        {
            return _sessions.GetValueOrDefault(id);
        }
    }

    internal MediaSession? Remove(uint id)
    {
        lock (_lock)
        {
            return _sessions.Remove(id, out MediaSession? s) ? s : null;
        }
    }

    /// <summary>Copies the open sessions into <paramref name="destination"/> (cleared first); no allocation when the
    /// list already has the capacity.</summary>
    public void Snapshot(List<MediaSession> destination)
    {
        destination.Clear();
        lock (_lock)
        {
            foreach (MediaSession s in _sessions.Values)
            {
                destination.Add(s);
            }
        }
    }

    internal List<MediaSession> RemoveAll()
    {
        lock (_lock)
        {
            var all = new List<MediaSession>(_sessions.Values);
            _sessions.Clear();
            return all;
        }
    }
}
