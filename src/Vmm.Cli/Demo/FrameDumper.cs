using System.Collections.Concurrent;
using Vmm.Cli.Configuration;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.FramePng;

namespace Vmm.Cli.Demo;

/// <summary>
/// <c>vmm demo --dump-frames DIR</c>: writes frames 0, N, 2N, … of those the guest receives as
/// <c>DIR/frame-SEQ-WxH-FOURCC.png</c>. It observes the device (<see cref="IFrameObserver"/>): on the frame clock's
/// thread a chosen frame is only copied out of shared memory into one of two preallocated buffers; a writer thread
/// converts and encodes it. When both buffers are still being written the clock waits, so the stream slows down
/// rather than a chosen frame being skipped.
/// </summary>
internal sealed class FrameDumper : IFrameObserver, IDisposable
{
    private const int Buffers = 2;

    private readonly string _directory;
    private readonly uint _every;
    private readonly uint _frames;
    private readonly BlockingCollection<FrameCopy> _free = new();
    private readonly BlockingCollection<FrameCopy> _pending = new();
    private readonly Thread _writer;
    private readonly List<string> _written = [];
    private volatile string? _error;
    private bool _finished;

    /// <param name="directory">Where the PNG files go (see <see cref="PrepareDirectory"/>).</param>
    /// <param name="every">Writes the frames whose sequence number is a multiple of this.</param>
    /// <param name="frames">Frames the guest streams: frames the clock fills after them (before the guest's
    /// STREAMOFF arrives) are never received, so they are not written.</param>
    /// <param name="expected">The layout the demo's camera produces, to size the buffers up front.</param>
    public FrameDumper(string directory, int every, int frames, FrameLayout expected)
    {
        _directory = directory;
        _every = (uint)every;
        _frames = (uint)frames;
        long size = expected.PlaneSize(0) + expected.PlaneSize(1) + expected.PlaneSize(2);
        for (int i = 0; i < Buffers; i++)
        {
            _free.Add(new FrameCopy(size));
        }
        _writer = new Thread(WriteFrames) { Name = "frame-dump", IsBackground = true };
        _writer.Start();
    }

    /// <summary>The files written so far, in order.</summary>
    public IReadOnlyList<string> Written
    {
        get
        {
            lock (_written)
            {
                return [.. _written];
            }
        }
    }

    /// <summary>Why writing stopped (one line), or null.</summary>
    public string? Error => _error;

    /// <summary>Creates <paramref name="directory"/> if needed and checks a file can be written there, so a bad
    /// directory is one line before the VM starts rather than a lost run. Returns its full path.</summary>
    public static string PrepareDirectory(string directory)
    {
        try
        {
            string full = Path.GetFullPath(directory);
            Directory.CreateDirectory(full);
            string probe = Path.Combine(full, $".vmm-dump-probe-{Environment.ProcessId}");
            using (new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
            return full;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new UsageException($"--dump-frames: cannot write frames to '{directory}': {e.Message}");
        }
    }

    /// <summary>The file name of a frame: sequence number, size and pixel format.</summary>
    public static string FileName(uint sequence, in FrameLayout layout) =>
        $"frame-{sequence:D6}-{layout.Width}x{layout.Height}-{Vmm.Devices.VirtioMedia.V4l2.FourCc.ToString(layout.FourCc)}.png";

    public void FrameCompleted(in CompletedFrame frame)
    {
        if (frame.Sequence % _every != 0 || frame.Sequence >= _frames || _error is not null)
        {
            return;
        }
        FrameCopy copy = _free.Take();
        copy.CopyFrom(frame);
        _pending.Add(copy);
    }

    private void WriteFrames()
    {
        byte[] rgba = [];
        foreach (FrameCopy copy in _pending.GetConsumingEnumerable())
        {
            FrameLayout layout = copy.Layout;
            string path = Path.Combine(_directory, FileName(copy.Sequence, layout));
            try
            {
                if (_error is null)
                {
                    int size = FrameConverter.RgbaSize(layout.Width, layout.Height);
                    if (rgba.Length < size)
                    {
                        rgba = new byte[size];
                    }
                    FrameConverter.ToRgba(layout, copy.Plane(0), copy.Plane(1), copy.Plane(2), rgba);
                    FramePngWriter.SaveRgba(path, rgba.AsSpan(0, size), layout.Width, layout.Height);
                    lock (_written)
                    {
                        _written.Add(path);
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                _error = $"cannot write {path}: {e.Message}";
            }
            finally
            {
                _free.Add(copy);
            }
        }
    }

    /// <summary>Waits for the frames already copied to be written. Call once the VM has stopped.</summary>
    public void Finish()
    {
        if (_finished)
        {
            return;
        }
        _finished = true;
        _pending.CompleteAdding();
        _writer.Join();
    }

    public void Dispose()
    {
        Finish();
        _free.Dispose();
        _pending.Dispose();
    }

    /// <summary>One frame's memory planes copied out of shared memory.</summary>
    private sealed class FrameCopy(long size)
    {
        private byte[] _bytes = new byte[size];
        private readonly int[] _offsets = new int[3];
        private readonly int[] _lengths = new int[3];

        public FrameLayout Layout { get; private set; }
        public uint Sequence { get; private set; }

        public ReadOnlySpan<byte> Plane(int plane) => _bytes.AsSpan(_offsets[plane], _lengths[plane]);

        /// <summary>Copies the bytes of each plane the layout uses (not a whole buffer's padding).</summary>
        public void CopyFrom(in CompletedFrame frame)
        {
            Layout = frame.Layout;
            Sequence = frame.Sequence;
            int total = 0;
            for (int p = 0; p < 3; p++)
            {
                _lengths[p] = (int)Math.Min(frame.Layout.PlaneSize(p), frame.Plane(p).Length);
                total += _lengths[p];
            }
            if (_bytes.Length < total)
            {
                _bytes = new byte[total]; // a larger frame than the demo's camera makes: not on the demo's path
            }
            int offset = 0;
            for (int p = 0; p < 3; p++)
            {
                _offsets[p] = offset;
                frame.Plane(p)[.._lengths[p]].CopyTo(_bytes.AsSpan(offset));
                offset += _lengths[p];
            }
        }
    }
}
