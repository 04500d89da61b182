namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// A fixed-capacity FIFO of bytes. Not thread-safe: the owner serialises access. Never grows, so a guest or a
/// host flood cannot make it allocate.
/// </summary>
internal sealed class ByteRing
{
    private readonly byte[] _items;
    private int _head;
    private int _count;

    public ByteRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _items = new byte[capacity];
    }

    public int Capacity => _items.Length;

    public int Count => _count;

    public int Free => _items.Length - _count;

    public bool IsEmpty => _count == 0;

    public bool IsFull => _count == _items.Length;

    public bool TryPush(byte value)
    {
        if (_count == _items.Length)
        {
            return false;
        }
        int tail = _head + _count;
        if (tail >= _items.Length)
        {
            tail -= _items.Length;
        }
        _items[tail] = value;
        _count++;
        return true;
    }

    /// <summary>Appends as many bytes of <paramref name="data"/> as fit; returns how many.</summary>
    public int Push(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        for (int i = 0; i < n; i++)
        {
            TryPush(data[i]);
        }
        return n;
    }

    public bool TryPop(out byte value)
    {
        if (_count == 0)
        {
            value = 0;
            return false;
        }
        value = _items[_head];
        _head = _head + 1 == _items.Length ? 0 : _head + 1;
        _count--;
        return true;
    }

    public void Clear()
    {
        _head = 0;
        _count = 0;
    }
}
