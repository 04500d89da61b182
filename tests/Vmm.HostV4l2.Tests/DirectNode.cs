using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.HostV4l2.Tests;

/// <summary>
/// The test's own way into a host V4L2 node, independent of the proxy: the reference the proxied results are compared
/// with (formats, controls, and frames read from the node directly). Blocking I/O, test use only.
/// </summary>
internal sealed unsafe partial class DirectNode : IDisposable
{
    private const int O_RDWR = 2, O_CLOEXEC = 0x80000;
    private readonly int _fd;

    private DirectNode(int fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    public string Path { get; }

    public static DirectNode Open(string path)
    {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
        {
            throw new IOException($"open {path}: errno {Marshal.GetLastPInvokeError()}");
        }
        return new DirectNode(fd, path);
    }

    public int Ioctl<T>(V4l2IoctlCode code, IoctlDirection direction, ref T arg) where T : unmanaged
    {
        fixed (T* p = &arg)
        {
            return ioctl(_fd, V4l2Ioctl.Request(direction, code, Unsafe.SizeOf<T>()), p) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>An ioctl on a byte payload of exactly the struct's size.</summary>
    public int Raw(V4l2IoctlCode code, IoctlDirection direction, byte[] payload)
    {
        fixed (byte* p = payload)
        {
            return ioctl(_fd, V4l2Ioctl.Request(direction, code, payload.Length), p) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    public int Rw<T>(V4l2IoctlCode code, ref T arg) where T : unmanaged => Ioctl(code, IoctlDirection.Read | IoctlDirection.Write, ref arg);

    /// <summary>S_PARM 1/<paramref name="fps"/> on the capture queue (vivid keeps it per device, across S_FMT at
    /// the same size); returns the rate the driver chose.</summary>
    public static double SetFrameRate(DirectNode node, uint fps)
    {
        var p = new V4l2StreamParm { Type = (uint)V4l2BufferType.VideoCapture, TimePerFrame = new V4l2Fract(1, fps) };
        Assert.Equal(0, node.Rw(V4l2IoctlCode.SParm, ref p));
        return p.TimePerFrame.Denominator / (double)Math.Max(1u, p.TimePerFrame.Numerator);
    }

    public V4l2Capability QueryCap()
    {
        var c = default(V4l2Capability);
        Assert.Equal(0, Ioctl(V4l2IoctlCode.QueryCap, IoctlDirection.Read, ref c));
        return c;
    }

    /// <summary>Captures one frame through MMAP at the current format and returns its CRC-32C over bytesused.</summary>
    public uint CaptureOneFrameChecksum(int skipFrames = 2) => Stream(skipFrames + 1, out _);

    /// <summary>Streams <paramref name="frames"/> frames through MMAP with 4 buffers, requeueing each at once; returns
    /// the CRC-32C of the last and the time from the first DQBUF to the last.</summary>
    public uint Stream(int frames, out TimeSpan firstToLast) => Stream(frames, out firstToLast, out _);

    /// <summary>As <see cref="Stream(int, out TimeSpan)"/>, also giving the time from STREAMON to the last DQBUF (what
    /// the firmware guest's fps is computed over).</summary>
    public uint Stream(int frames, out TimeSpan firstToLast, out TimeSpan streamOnToLast)
    {
        firstToLast = TimeSpan.Zero;
        streamOnToLast = TimeSpan.Zero;
        var req = new V4l2RequestBuffers { Count = 4, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, Rw(V4l2IoctlCode.ReqBufs, ref req));
        var maps = new (nint Address, nuint Length)[req.Count];
        try
        {
            for (uint i = 0; i < req.Count; i++)
            {
                var b = new V4l2Buffer { Index = i, Type = req.Type, Memory = req.Memory };
                Assert.Equal(0, Rw(V4l2IoctlCode.QueryBuf, ref b));
                nint p = mmap(0, b.Length, 1, 1, _fd, (long)b.M);
                Assert.NotEqual(-1, (long)p);
                maps[i] = (p, b.Length);
                Assert.Equal(0, Rw(V4l2IoctlCode.QBuf, ref b));
            }
            uint type = req.Type;
            long streamOn = System.Diagnostics.Stopwatch.GetTimestamp();
            Assert.Equal(0, Ioctl(V4l2IoctlCode.StreamOn, IoctlDirection.Write, ref type));
            uint crc = 0;
            long first = 0;
            for (int n = 0; n < frames; n++)
            {
                var b = new V4l2Buffer { Type = req.Type, Memory = req.Memory };
                Assert.Equal(0, Rw(V4l2IoctlCode.DqBuf, ref b));
                if (n == 0)
                {
                    first = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                if (n == frames - 1)
                {
                    firstToLast = System.Diagnostics.Stopwatch.GetElapsedTime(first);
                    streamOnToLast = System.Diagnostics.Stopwatch.GetElapsedTime(streamOn);
                }
                if (n == frames - 1)
                {
                    // Only the last: checksumming every frame would pace the stream (slowly, under an emulated CPU).
                    crc = FrameChecksum.Compute(new ReadOnlySpan<byte>((void*)maps[b.Index].Address, (int)b.BytesUsed));
                }
                Assert.Equal(0, Rw(V4l2IoctlCode.QBuf, ref b));
            }
            Assert.Equal(0, Ioctl(V4l2IoctlCode.StreamOff, IoctlDirection.Write, ref type));
            return crc;
        }
        finally
        {
            foreach ((nint a, nuint l) in maps)
            {
                if (a != 0)
                {
                    munmap(a, l);
                }
            }
            var free = new V4l2RequestBuffers { Count = 0, Type = req.Type, Memory = req.Memory };
            Rw(V4l2IoctlCode.ReqBufs, ref free);
        }
    }

    public void Dispose() => close(_fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, nuint request, void* arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint addr, nuint length);
}

/// <summary>Finds vivid's capture node. Outside CI a machine without vivid skips with the reason; under CI=true the
/// tests fail instead (they are meant to run in the lab, lab/run.sh, which loads vivid).</summary>
internal static class Vivid
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public const string SysfsDriver = "/sys/bus/platform/drivers/vivid";

    /// <summary>The first /dev/videoN whose driver is vivid and that can capture video, or null.</summary>
    public static string? FindCaptureNode()
    {
        if (!Directory.Exists("/dev"))
        {
            return null;
        }
        foreach (string path in Directory.GetFiles("/dev", "video*").OrderBy(p => p.Length).ThenBy(p => p, StringComparer.Ordinal))
        {
            try
            {
                using DirectNode node = DirectNode.Open(path);
                V4l2Capability caps = default;
                if (node.Ioctl(V4l2IoctlCode.QueryCap, IoctlDirection.Read, ref caps) != 0)
                {
                    continue;
                }
                if (Text(caps) == "vivid" && (caps.DeviceCaps & V4l2Const.CapVideoCapture) != 0)
                {
                    return path;
                }
            }
            catch (IOException)
            {
            }
        }
        return null;
    }

    public static unsafe string Text(in V4l2Capability caps)
    {
        fixed (byte* p = caps.Driver)
        {
            return V4l2Text.Read(new ReadOnlySpan<byte>(p, 16));
        }
    }

    public static string? SkipReason() => FindCaptureNode() is null && !IsCi
        ? "no vivid capture node here: the host V4L2 proxy tests run in the lab (lab/run.sh loads vivid); ./build.sh test runs them there"
        : null;
}

/// <summary>A test that needs vivid: skipped with the reason outside CI when it is missing, failed under CI.</summary>
internal sealed class VividFactAttribute : FactAttribute
{
    public VividFactAttribute()
    {
        if (Vivid.SkipReason() is { } reason)
        {
            Skip = reason;
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VividCollection
{
    public const string Name = "vivid (one host device, used in turn)";
}
