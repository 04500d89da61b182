using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>
/// Device-wide record of guest mappings made with CMD_MMAP, keyed by <c>driver_addr</c>, because CMD_MUNMAP names no
/// session and may arrive after the session closed. One entry per buffer with a mapping count (the driver expects
/// the same address when a buffer is mapped twice); mapping a mapped buffer with a different RW flag is refused.
/// </summary>
public sealed class MappingTable
{
    private readonly object _lock = new();
    private readonly Dictionary<ulong, Entry> _entries = [];

    private sealed class Entry(MmapBuffer buffer, bool writable)
    {
        public MmapBuffer Buffer { get; } = buffer;
        public bool Writable { get; } = writable;
        public int Count { get; set; }
    }

    /// <summary>Number of distinct mapped buffers.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Records a mapping of <paramref name="buffer"/>; returns 0 or EINVAL (RW mismatch / freed buffer).</summary>
    public int Map(MmapBuffer buffer, bool writable)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(buffer.Offset, out Entry? entry))
            {
                if (!ReferenceEquals(entry.Buffer, buffer) || entry.Writable != writable)
                {
                    return Errno.EINVAL;
                }
                entry.Count++;
                return 0;
            }
            if (!buffer.TryAddReference())
            {
                return Errno.EINVAL;
            }
            _entries.Add(buffer.Offset, new Entry(buffer, writable) { Count = 1 });
            return 0;
        }
    }

    /// <summary>Undoes one mapping at <paramref name="driverAddr"/>; EINVAL when nothing is mapped there (extra
    /// MUNMAPs after fork() or partial munmap() are legal guest behaviour and must not hurt).</summary>
    public int Unmap(ulong driverAddr)
    {
        MmapBuffer? release = null;
        lock (_lock)
        {
            if (!_entries.TryGetValue(driverAddr, out Entry? entry))
            {
                return Errno.EINVAL;
            }
            if (--entry.Count == 0)
            {
                _entries.Remove(driverAddr);
                release = entry.Buffer;
            }
        }
        release?.Release();
        return 0;
    }

    /// <summary>Drops every mapping (device reset).</summary>
    public void Clear()
    {
        List<MmapBuffer> release;
        lock (_lock)
        {
            release = new List<MmapBuffer>(_entries.Count);
            foreach (Entry e in _entries.Values)
            {
                release.Add(e.Buffer);
            }
            _entries.Clear();
        }
        foreach (MmapBuffer b in release)
        {
            b.Release();
        }
    }
}
