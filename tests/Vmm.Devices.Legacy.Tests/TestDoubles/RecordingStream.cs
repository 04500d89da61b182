namespace Vmm.Devices.Legacy.Tests.TestDoubles;

/// <summary>A write-only sink that keeps the bytes and counts Write calls; safe to read while a timer writes.</summary>
internal sealed class RecordingStream : Stream
{
    private readonly Lock _lock = new();
    private readonly List<byte> _bytes = [];
    private int _writeCalls;

    /// <summary>When set, every Write throws this (a closed stdout).</summary>
    public Exception? FailWith { get; set; }

    public int WriteCalls
    {
        get
        {
            lock (_lock)
            {
                return _writeCalls;
            }
        }
    }

    public byte[] Bytes
    {
        get
        {
            lock (_lock)
            {
                return [.. _bytes];
            }
        }
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        lock (_lock)
        {
            if (FailWith is { } e)
            {
                throw e;
            }
            _writeCalls++;
            _bytes.AddRange(buffer);
        }
    }

    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
