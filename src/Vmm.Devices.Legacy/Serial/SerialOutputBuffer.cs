namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// Batches the guest's transmitted bytes (one port write each) into few writes on the sink: a flush on every
/// '\n', when the buffer is full, and at most <c>idleFlushDelay</c> after the first byte that no newline has
/// flushed (prompts, progress output). Test harnesses wait for whole marker lines on stdout, so a line is on the
/// sink as soon as its '\n' is transmitted.
/// </summary>
/// <remarks>
/// The flush runs on the thread that appended the byte (a vCPU thread) or on a timer thread. A slow sink
/// therefore slows the guest's transmitter rather than growing memory. Sink failures (a closed stdout) drop the
/// bytes and are counted, never thrown: the guest must not be able to crash the VMM by printing.
/// </remarks>
internal sealed class SerialOutputBuffer : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Stream _sink;
    private readonly byte[] _buffer;
    private readonly Timer _idleTimer;
    private readonly TimeSpan _idleFlushDelay;
    private int _length;
    private bool _timerArmed;
    private bool _disposed;
    private long _lostBytes;
    private long _writtenBytes;

    public SerialOutputBuffer(Stream sink, int capacity, TimeSpan idleFlushDelay)
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _sink = sink;
        _buffer = new byte[capacity];
        _idleFlushDelay = idleFlushDelay;
        _idleTimer = new Timer(static state => ((SerialOutputBuffer)state!).OnIdleTimer(), this,
            Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Bytes that could not be written because the sink failed or the buffer was disposed.</summary>
    public long LostBytes => Interlocked.Read(ref _lostBytes);

    /// <summary>Bytes handed to the sink successfully.</summary>
    public long WrittenBytes => Interlocked.Read(ref _writtenBytes);

    public void Append(byte value)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                _lostBytes++;
                return;
            }
            _buffer[_length++] = value;
            if (value == (byte)'\n' || _length == _buffer.Length)
            {
                FlushLocked();
            }
            else if (!_timerArmed)
            {
                // Armed once per burst, not per byte: the deadline counts from the oldest unflushed byte.
                _timerArmed = true;
                _idleTimer.Change(_idleFlushDelay, Timeout.InfiniteTimeSpan);
            }
        }
    }

    public void Flush()
    {
        lock (_lock)
        {
            FlushLocked();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            FlushLocked();
            _disposed = true;
        }
        _idleTimer.Dispose();
    }

    private void OnIdleTimer()
    {
        lock (_lock)
        {
            _timerArmed = false;
            if (!_disposed)
            {
                FlushLocked();
            }
        }
    }

    private void FlushLocked()
    {
        if (_length == 0)
        {
            return;
        }
        int length = _length;
        _length = 0;
        try
        {
            _sink.Write(_buffer, 0, length);
            _sink.Flush();
            _writtenBytes += length;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException or UnauthorizedAccessException)
        {
            _lostBytes += length;
        }
    }
}
