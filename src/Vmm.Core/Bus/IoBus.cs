namespace Vmm.Core.Bus;

/// <summary>
/// Address-range dispatch for one address space (port I/O or MMIO). Lookups are lock-free over an immutable,
/// sorted snapshot; inserts and removes (PCI BAR moves) copy the snapshot under a lock.
/// </summary>
public sealed class IoBus
{
    private readonly Lock _writeLock = new();
    private Entry[] _entries = [];

    public IoBus(string name) => Name = name;

    public string Name { get; }

    /// <summary>Adds <paramref name="device"/> at [start, start+length). Throws if it overlaps an existing range.</summary>
    public void Insert(IBusDevice device, ulong start, ulong length)
    {
        if (length == 0 || start + length < start)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"bad {Name} range 0x{start:x}+0x{length:x}");
        }
        lock (_writeLock)
        {
            Entry[] old = _entries;
            foreach (Entry e in old)
            {
                if (start < e.Start + e.Length && e.Start < start + length)
                {
                    throw new InvalidOperationException($"{Name} range 0x{start:x}+0x{length:x} overlaps 0x{e.Start:x}+0x{e.Length:x}");
                }
            }
            var next = new Entry[old.Length + 1];
            int j = 0;
            bool placed = false;
            foreach (Entry e in old)
            {
                if (!placed && start < e.Start)
                {
                    next[j++] = new Entry(start, length, device);
                    placed = true;
                }
                next[j++] = e;
            }
            if (!placed)
            {
                next[j] = new Entry(start, length, device);
            }
            Volatile.Write(ref _entries, next);
        }
    }

    /// <summary>Removes the range starting at <paramref name="start"/> owned by <paramref name="device"/>; false if absent.</summary>
    public bool Remove(IBusDevice device, ulong start)
    {
        lock (_writeLock)
        {
            Entry[] old = _entries;
            int index = Array.FindIndex(old, e => e.Start == start && ReferenceEquals(e.Device, device));
            if (index < 0)
            {
                return false;
            }
            var next = new Entry[old.Length - 1];
            Array.Copy(old, 0, next, 0, index);
            Array.Copy(old, index + 1, next, index, old.Length - index - 1);
            Volatile.Write(ref _entries, next);
            return true;
        }
    }

    /// <summary>Dispatches a read; false (and <paramref name="data"/> untouched) when no device claims the whole access.</summary>
    public bool Read(ulong address, Span<byte> data)
    {
        if (!TryFind(address, (ulong)data.Length, out Entry e))
        {
            return false;
        }
        e.Device.Read(address - e.Start, data);
        return true;
    }

    /// <summary>Dispatches a write; false when no device claims the whole access.</summary>
    public bool Write(ulong address, ReadOnlySpan<byte> data)
    {
        if (!TryFind(address, (ulong)data.Length, out Entry e))
        {
            return false;
        }
        e.Device.Write(address - e.Start, data);
        return true;
    }

    private bool TryFind(ulong address, ulong width, out Entry found)
    {
        Entry[] entries = Volatile.Read(ref _entries);
        int lo = 0, hi = entries.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            Entry e = entries[mid];
            if (address < e.Start)
            {
                hi = mid - 1;
            }
            else if (address - e.Start >= e.Length)
            {
                lo = mid + 1;
            }
            else
            {
                // The access must not run past the device's range (a 4-byte read at the last byte of a range).
                found = e;
                return width <= e.Length - (address - e.Start);
            }
        }
        found = default;
        return false;
    }

    private readonly record struct Entry(ulong Start, ulong Length, IBusDevice Device);
}
