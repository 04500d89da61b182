using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>
/// The built-in camera: a capture device (single- or multi-planar API, chosen by the options) producing <see cref="TestPatternImage"/>
/// frames. State shared by all sessions lives here — the controls (V4L2 controls belong to the device, not to a file
/// handle) and the single "buffer owner" slot (v4l2-compliance expects other handles to get EBUSY).
/// </summary>
public sealed class TestPatternBackend : IMediaBackend
{
    private readonly object _lock = new();
    private readonly List<TestPatternSession> _sessions = [];
    private TestPatternSession? _bufferOwner;
    private int _brightness, _contrast = 128, _pattern;
    private (PixelFormatInfo Format, uint Width, uint Height) _currentFormat;
    private uint _currentFps;

    public TestPatternBackend(TestPatternOptions options)
    {
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }
        Options = options;
        _currentFormat = (PixelFormats.Find(options.Format)!, options.Width, options.Height);
        _currentFps = options.Fps;
        var sizes = new List<(uint, uint)>(PixelFormats.CommonSizes);
        if (!sizes.Contains((options.Width, options.Height)))
        {
            sizes.Add((options.Width, options.Height));
            sizes.Sort((a, b) => (a.Item1 * a.Item2).CompareTo(b.Item1 * b.Item2) is var c && c != 0 ? c : a.Item1.CompareTo(b.Item1));
        }
        FrameSizes = sizes.ToArray();
        var rates = new List<uint>(PixelFormats.CommonRates);
        if (!rates.Contains(options.Fps))
        {
            rates.Add(options.Fps);
            rates.Sort();
        }
        FrameRates = rates.ToArray();
    }

    public TestPatternOptions Options { get; }

    /// <summary>Enumerated discrete frame sizes (common ones plus the configured one).</summary>
    public (uint Width, uint Height)[] FrameSizes { get; }

    /// <summary>Enumerated frame rates in frames per second (common ones plus the configured one).</summary>
    public uint[] FrameRates { get; }

    /// <summary>One capture API only (single- or multi-planar, per <see cref="TestPatternOptions.UsesMultiPlanarApi"/>).</summary>
    public uint DeviceCaps =>
        (Options.UsesMultiPlanarApi ? V4l2Const.CapVideoCaptureMplane : V4l2Const.CapVideoCapture) | V4l2Const.CapStreaming;

    /// <summary>The buffer type of the offered API (1 = VIDEO_CAPTURE, 9 = VIDEO_CAPTURE_MPLANE).</summary>
    internal uint CaptureBufferType =>
        (uint)(Options.UsesMultiPlanarApi ? V4l2BufferType.VideoCaptureMplane : V4l2BufferType.VideoCapture);

    public string Card => Options.Card;

    /// <summary>The device's current format (shared by all sessions, as V4L2 capture devices keep it).</summary>
    internal (PixelFormatInfo Format, uint Width, uint Height) CurrentFormat
    {
        get
        {
            lock (_lock)
            {
                return _currentFormat;
            }
        }
    }

    /// <summary>The device's current frame rate.</summary>
    internal uint CurrentFps
    {
        get
        {
            lock (_lock)
            {
                return _currentFps;
            }
        }
    }

    internal void SetFormat(PixelFormatInfo format, uint width, uint height)
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

    /// <summary>Current control values.</summary>
    public TestPatternControls Controls
    {
        get
        {
            lock (_lock)
            {
                return new TestPatternControls(_brightness, _contrast, _pattern);
            }
        }
    }

    public int Open(IMediaSessionHost host, out MediaBackendSession? session)
    {
        var s = new TestPatternSession(this, host);
        lock (_lock)
        {
            _sessions.Add(s);
        }
        session = s;
        return 0;
    }

    internal bool TryTakeBufferOwnership(TestPatternSession session)
    {
        lock (_lock)
        {
            if (_bufferOwner is not null && _bufferOwner != session)
            {
                return false;
            }
            _bufferOwner = session;
            return true;
        }
    }

    internal bool IsOwnedByOther(TestPatternSession session)
    {
        lock (_lock)
        {
            return _bufferOwner is not null && _bufferOwner != session;
        }
    }

    internal void ReleaseBufferOwnership(TestPatternSession session)
    {
        lock (_lock)
        {
            if (_bufferOwner == session)
            {
                _bufferOwner = null;
            }
        }
    }

    internal void Closed(TestPatternSession session)
    {
        lock (_lock)
        {
            _sessions.Remove(session);
            if (_bufferOwner == session)
            {
                _bufferOwner = null;
            }
        }
    }

    internal bool IsSupportedSize(uint width, uint height)
    {
        foreach ((uint w, uint h) in FrameSizes)
        {
            if (w == width && h == height)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The supported size nearest to the request (by sum of absolute differences).</summary>
    internal (uint Width, uint Height) NearestSize(uint width, uint height)
    {
        (uint, uint) best = FrameSizes[0];
        long bestDistance = long.MaxValue;
        foreach ((uint w, uint h) in FrameSizes)
        {
            long d = Math.Abs((long)w - width) + Math.Abs((long)h - height);
            if (d < bestDistance)
            {
                bestDistance = d;
                best = (w, h);
            }
        }
        return best;
    }

    internal uint NearestRate(uint fps)
    {
        uint best = FrameRates[0];
        foreach (uint r in FrameRates)
        {
            if (Math.Abs((long)r - fps) < Math.Abs((long)best - fps))
            {
                best = r;
            }
        }
        return best;
    }

    // ---- controls ----

    internal readonly record struct ControlInfo(uint Id, uint Type, string Name, int Min, int Max, int Step, int Default, uint Flags);

    internal const uint CidUserClass = V4l2Const.CtrlClassUser | 1;
    internal const uint CidImageProcClass = V4l2Const.CtrlClassImageProc | 1;
    private const uint FlagReadOnly = 0x4, FlagWriteOnly = 0x40;

    /// <summary>Sorted by id, as the NEXT_CTRL enumeration requires.</summary>
    internal static readonly ControlInfo[] ControlTable =
    [
        new(CidUserClass, V4l2Const.CtrlTypeCtrlClass, "User Controls", 0, 0, 0, 0, FlagReadOnly | FlagWriteOnly),
        new(V4l2Const.CidBrightness, V4l2Const.CtrlTypeInteger, "Brightness", -128, 127, 1, 0, V4l2Const.CtrlFlagSlider),
        new(V4l2Const.CidContrast, V4l2Const.CtrlTypeInteger, "Contrast", 0, 255, 1, 128, V4l2Const.CtrlFlagSlider),
        new(CidImageProcClass, V4l2Const.CtrlTypeCtrlClass, "Image Processing Controls", 0, 0, 0, 0, FlagReadOnly | FlagWriteOnly),
        new(V4l2Const.CidTestPattern, V4l2Const.CtrlTypeMenu, "Test Pattern", 0, 2, 1, 0, 0),
    ];

    internal static readonly string[] PatternMenu = ["Colour Bars + Moving Box", "Colour Bars", "Solid Grey"];

    internal static int FindControl(uint id)
    {
        for (int i = 0; i < ControlTable.Length; i++)
        {
            if (ControlTable[i].Id == id)
            {
                return i;
            }
        }
        return -1;
    }

    internal static bool IsClassControl(in ControlInfo c) => c.Type == V4l2Const.CtrlTypeCtrlClass;

    internal int GetControlValue(uint id)
    {
        lock (_lock)
        {
            return id switch
            {
                V4l2Const.CidBrightness => _brightness,
                V4l2Const.CidContrast => _contrast,
                V4l2Const.CidTestPattern => _pattern,
                _ => 0,
            };
        }
    }

    /// <summary>Checks (and clamps integer) values; ERANGE for a menu index outside min…max (as the kernel's control
    /// framework answers), EACCES for class controls.</summary>
    internal static int ValidateControlValue(int index, ref int value)
    {
        ControlInfo c = ControlTable[index];
        if (IsClassControl(c))
        {
            return Errno.EACCES;
        }
        if (c.Type == V4l2Const.CtrlTypeMenu)
        {
            return value < c.Min || value > c.Max ? Errno.ERANGE : 0;
        }
        value = Math.Clamp(value, c.Min, c.Max);
        return 0;
    }

    /// <summary>Sets a validated value and sends CTRL events to subscribed sessions (not to the setter unless it
    /// asked for feedback).</summary>
    internal void SetControlValue(uint id, int value, TestPatternSession setter)
    {
        TestPatternSession[] targets;
        lock (_lock)
        {
            int old = id switch
            {
                V4l2Const.CidBrightness => _brightness,
                V4l2Const.CidContrast => _contrast,
                _ => _pattern,
            };
            if (old == value)
            {
                return;
            }
            switch (id)
            {
                case V4l2Const.CidBrightness: _brightness = value; break;
                case V4l2Const.CidContrast: _contrast = value; break;
                default: _pattern = value; break;
            }
            targets = _sessions.ToArray();
        }
        foreach (TestPatternSession s in targets)
        {
            s.NotifyControlChanged(id, value, setter);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _sessions.Clear();
            _bufferOwner = null;
        }
    }
}
