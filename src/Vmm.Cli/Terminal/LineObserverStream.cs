using System.Text;

namespace Vmm.Cli.Terminal;

/// <summary>
/// Forwards the guest console to an inner stream and hands each complete line to an observer as well, so the VMM can
/// react to what a test payload prints (the demo checks frame checksums this way) without a second reader.
/// </summary>
internal sealed class LineObserverStream(Stream inner, Action<string> onLine) : Stream
{
    private readonly List<byte> _partial = new(256);

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        lock (_partial)
        {
            foreach (byte b in buffer)
            {
                if (b == (byte)'\n')
                {
                    string line = Encoding.UTF8.GetString(_partial.ToArray()).TrimEnd('\r');
                    _partial.Clear();
                    onLine(line);
                }
                else if (_partial.Count < 4096)
                {
                    _partial.Add(b);
                }
            }
        }
    }

    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
