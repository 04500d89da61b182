using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Core.Interop;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.HostV4l2;

/// <summary>
/// The host V4L2 proxy: each guest session gets its own open() of the host node (as crosvm's <c>--v4l2-proxy</c>
/// does), its ioctls run on the host with the host's result and errno, and buffer state stays in the host's vb2.
/// MMAP buffers are the host driver's pages mapped into shared-memory region 0 (<see cref="MapsHostBuffers"/>), so a
/// captured frame reaches the guest without a copy. The node is checked once at start so that a bad device is one
/// clear line before any VM runs.
/// </summary>
public sealed class HostV4l2Backend : IMediaBackend
{
    // What the guest may see of the host's device_caps: the video queues, streaming, and the tuner, audio, modulator
    // and frequency-seek ioctls, which pass through. Overlay (v4l2_window holds pointers), read()/write() (not
    // proxied), VBI, SDR and media-controller bits are not offered.
    private const uint CapHwFreqSeek = 0x400, CapTuner = 0x10000, CapAudio = 0x20000, CapModulator = 0x80000;

    private const uint OfferedCaps = V4l2Const.CapVideoCapture | V4l2Const.CapVideoOutput | V4l2Const.CapVideoCaptureMplane |
        V4l2Const.CapVideoOutputMplane | V4l2Const.CapVideoM2m | V4l2Const.CapVideoM2mMplane | V4l2Const.CapExtPixFormat |
        V4l2Const.CapStreaming | CapTuner | CapAudio | CapModulator | CapHwFreqSeek;

    private const uint CaptureCaps = V4l2Const.CapVideoCapture | V4l2Const.CapVideoCaptureMplane | V4l2Const.CapVideoM2m |
        V4l2Const.CapVideoM2mMplane;

    private readonly HostV4l2Options _options;
    private readonly ILogger _logger;
    private readonly BytesCopiedCounter _copied;

    private HostV4l2Backend(HostV4l2Options options, uint deviceCaps, string card, ILogger logger)
    {
        _options = options;
        _logger = logger;
        _copied = new BytesCopiedCounter(logger);
        DeviceCaps = deviceCaps;
        Card = card;
    }

    public uint DeviceCaps { get; }

    public string Card { get; }

    public bool MapsHostBuffers => true;

    /// <summary>Frame bytes copied by this device's sessions (bounce buffers for SHARED_PAGES a host driver could not
    /// take in place). The goal, and the MMAP path, is 0.</summary>
    public long BytesCopied => _copied.Total;

    /// <summary>Frames delivered to the guest (DQBUF events), for bytes-copied-per-frame.</summary>
    public long FramesDelivered => _copied.Frames;

    /// <summary>Opens and checks the node; throws <see cref="MediaBackendException"/> with one line naming the problem.</summary>
    public static HostV4l2Backend Open(HostV4l2Options options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        string path = options.Path;
        int errno = HostV4l2Node.TryOpen(path, out HostV4l2Node? node);
        if (errno != 0)
        {
            throw new MediaBackendException(errno switch
            {
                2 => $"no such device node",
                13 => $"permission denied (the user needs read-write access, e.g. the video group)",
                16 => $"the device is busy (another program holds it)",
                _ => $"cannot open: {Libc.ErrnoMessage(errno)}",
            });
        }
        using (node)
        {
            if (node!.QueryCapabilities(out V4l2Capability caps) != 0)
            {
                throw new MediaBackendException($"not a V4L2 device (VIDIOC_QUERYCAP failed)");
            }
            uint deviceCaps = (caps.Capabilities & V4l2Const.CapDeviceCaps) != 0 ? caps.DeviceCaps : caps.Capabilities;
            if ((deviceCaps & CaptureCaps) == 0)
            {
                throw new MediaBackendException($"the device has no video capture capability (device_caps 0x{deviceCaps:x8})");
            }
            if ((deviceCaps & V4l2Const.CapStreaming) == 0)
            {
                throw new MediaBackendException($"the device does not support streaming I/O");
            }
            // REQBUFS(0) changes nothing on an idle queue but answers EBUSY while another file streams from it.
            var probe = new V4l2RequestBuffers
            {
                Type = (uint)((deviceCaps & (V4l2Const.CapVideoCaptureMplane | V4l2Const.CapVideoM2mMplane)) != 0
                    ? V4l2BufferType.VideoCaptureMplane : V4l2BufferType.VideoCapture),
                Memory = (uint)V4l2Memory.Mmap,
            };
            if (node.Ioctl(V4l2IoctlCode.ReqBufs, IoctlDirection.Read | IoctlDirection.Write, ref probe) == Errno.EBUSY)
            {
                throw new MediaBackendException($"the device is busy (another program is streaming from it)");
            }
            string card = ReadCard(caps);
            return new HostV4l2Backend(options, deviceCaps & OfferedCaps, card.Length > 0 ? card : path, logger);
        }
    }

    private static unsafe string ReadCard(in V4l2Capability caps)
    {
        // Safe: Card is a 32-byte fixed buffer inside the struct, read within its bounds.
        fixed (byte* p = caps.Card)
        {
            return V4l2Text.Read(new ReadOnlySpan<byte>(p, 32));
        }
    }

    public int Open(IMediaSessionHost host, out MediaBackendSession? session)
    {
        session = null;
        int errno = HostV4l2Node.TryOpen(_options.Path, out HostV4l2Node? node);
        if (errno != 0)
        {
            return errno;
        }
        try
        {
            session = new HostV4l2Session(host, node!, _copied, _options.StallTimeout, [.. _options.HiddenControls], _logger);
            return 0;
        }
        catch
        {
            node!.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        // Sessions own their host files; nothing is held device-wide. The copy counter is the proxy's one figure of
        // merit, so it is reported when the device goes away.
        if (FramesDelivered > 0)
        {
            MediaLog.HostProxyTotals(_logger, _options.Path, FramesDelivered, BytesCopied, (double)BytesCopied / FramesDelivered);
        }
    }
}

/// <summary>Bytes copied and frames delivered, summed over a device's sessions (thread-safe).</summary>
internal sealed class BytesCopiedCounter(ILogger logger)
{
    private long _total;
    private long _frames;
    private int _logged;

    public long Total => Interlocked.Read(ref _total);

    public long Frames => Interlocked.Read(ref _frames);

    public void AddFrame() => Interlocked.Increment(ref _frames);

    /// <summary>Counts a fallback copy; the first one is logged (once per device) with its reason.</summary>
    public void AddCopy(long bytes, string reason)
    {
        Interlocked.Add(ref _total, bytes);
        if (Interlocked.Exchange(ref _logged, 1) == 0)
        {
            MediaLog.HostProxyCopying(logger, reason);
        }
    }
}
