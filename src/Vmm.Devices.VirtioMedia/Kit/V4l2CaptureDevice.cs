using System.Diagnostics;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// The state of a kit capture device that every open handle shares, as V4L2 keeps it for a capture device (only
/// mem-to-mem devices keep formats per handle; v4l2-compliance checks that a second handle sees S_FMT): the current
/// format and rate, the controls, and the queue-owner slot. Sessions are <see cref="CaptureSession"/>s over one
/// <see cref="ICaptureFrameSource"/>. Thread-safe.
/// </summary>
public sealed class V4l2CaptureDevice
{
    private readonly object _lock = new();
    private (CaptureFormat Format, uint Width, uint Height) _currentFormat;
    private uint _currentFps;

    /// <summary>A device over <paramref name="source"/> offering one capture API (multi-planar or not), starting
    /// at the given format, size and rate; <paramref name="paced"/> false produces frames as fast as buffers come.</summary>
    public V4l2CaptureDevice(ICaptureFrameSource source, V4l2ControlSet controls, bool multiPlanar, CaptureFormat format,
        uint width, uint height, uint fps, bool paced)
    {
        Source = source;
        Controls = controls;
        BufferType = (uint)(multiPlanar ? V4l2BufferType.VideoCaptureMplane : V4l2BufferType.VideoCapture);
        _currentFormat = (format, width, height);
        _currentFps = fps;
        Paced = paced;
    }

    /// <summary>Where the frames come from.</summary>
    public ICaptureFrameSource Source { get; }

    /// <summary>The device's controls.</summary>
    public V4l2ControlSet Controls { get; }

    /// <summary>vb2's owner slot, shared by the sessions' queues.</summary>
    public V4l2QueueOwnership Ownership { get; } = new();

    /// <summary>The buffer type of the offered API (VIDEO_CAPTURE or VIDEO_CAPTURE_MPLANE).</summary>
    public uint BufferType { get; }

    /// <summary>V4L2 device_caps: one capture API and streaming.</summary>
    public uint DeviceCaps =>
        (V4l2Formats.IsMultiPlanar(BufferType) ? V4l2Const.CapVideoCaptureMplane : V4l2Const.CapVideoCapture) | V4l2Const.CapStreaming;

    /// <summary>True when frames are paced to the frame rate.</summary>
    public bool Paced { get; }

    /// <summary>The current format and size.</summary>
    public (CaptureFormat Format, uint Width, uint Height) CurrentFormat
    {
        get
        {
            lock (_lock)
            {
                return _currentFormat;
            }
        }
    }

    /// <summary>The current frame rate.</summary>
    public uint CurrentFps
    {
        get
        {
            lock (_lock)
            {
                return _currentFps;
            }
        }
    }

    /// <summary>Ticks between frames (<see cref="Stopwatch"/>), 0 when unpaced.</summary>
    public long FrameInterval => Paced ? Stopwatch.Frequency / CurrentFps : 0;

    internal void SetFormat(CaptureFormat format, uint width, uint height)
    {
        lock (_lock)
        {
            _currentFormat = (format, width, height);
        }
    }

    internal void SetFps(uint fps)
    {
        lock (_lock)
        {
            _currentFps = fps;
        }
    }

    /// <summary>Opens a session (guest open()).</summary>
    public CaptureSession Open(IMediaSessionHost host) => new(this, host);

    /// <summary>The device is going away: no queue owns it any more.</summary>
    public void Close() => Ownership.Clear();
}
