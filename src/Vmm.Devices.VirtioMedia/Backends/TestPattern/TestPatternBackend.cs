using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>
/// The built-in camera: a kit capture device (single- or multi-planar API, chosen by the options) over the
/// <see cref="TestPatternFrameSource"/>, with brightness, contrast and a pattern menu as its controls. V4L2 state
/// shared by all sessions (format, rate, controls, the buffer owner) lives in its <see cref="V4l2CaptureDevice"/>.
/// </summary>
public sealed class TestPatternBackend : IMediaBackend
{
    private static readonly string[] PatternMenu = ["Colour Bars + Moving Box", "Colour Bars", "Solid Grey"];

    /// <summary>Sorted by id, as the NEXT_CTRL enumeration requires.</summary>
    private static readonly V4l2ControlInfo[] ControlTable =
    [
        V4l2ControlInfo.Class(V4l2Const.CtrlClassUser, "User Controls"),
        new(V4l2Const.CidBrightness, V4l2Const.CtrlTypeInteger, "Brightness", -128, 127, 1, 0, V4l2Const.CtrlFlagSlider),
        new(V4l2Const.CidContrast, V4l2Const.CtrlTypeInteger, "Contrast", 0, 255, 1, 128, V4l2Const.CtrlFlagSlider),
        V4l2ControlInfo.Class(V4l2Const.CtrlClassImageProc, "Image Processing Controls"),
        new(V4l2Const.CidTestPattern, V4l2Const.CtrlTypeMenu, "Test Pattern", 0, PatternMenu.Length - 1, 1, 0, 0, PatternMenu),
    ];

    private readonly TestPatternFrameSource _source;
    private readonly V4l2CaptureDevice _device;

    public TestPatternBackend(TestPatternOptions options)
    {
        string? error = options.Validate();
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(options));
        }
        Options = options;
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
        var controls = new V4l2ControlSet(ControlTable);
        _source = new TestPatternFrameSource(options, FrameSizes, FrameRates, controls);
        _device = new V4l2CaptureDevice(_source, controls, options.UsesMultiPlanarApi,
            PixelFormats.Find(options.Format)!, options.Width, options.Height, options.Fps, options.Paced);
    }

    public TestPatternOptions Options { get; }

    /// <summary>Enumerated discrete frame sizes (common ones plus the configured one).</summary>
    public (uint Width, uint Height)[] FrameSizes { get; }

    /// <summary>Enumerated frame rates in frames per second (common ones plus the configured one).</summary>
    public uint[] FrameRates { get; }

    /// <summary>One capture API only (single- or multi-planar, per <see cref="TestPatternOptions.UsesMultiPlanarApi"/>).</summary>
    public uint DeviceCaps => _device.DeviceCaps;

    public string Card => Options.Card;

    /// <summary>Current control values.</summary>
    public TestPatternControls Controls => _source.CurrentControls;

    public int Open(IMediaSessionHost host, out MediaBackendSession? session)
    {
        session = _device.Open(host);
        return 0;
    }

    public void Dispose() => _device.Close();
}
