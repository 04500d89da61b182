using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>
/// The test pattern as a kit frame source: the raw formats of <see cref="PixelFormats"/>, the common sizes and
/// rates plus the configured ones, and <see cref="TestPatternImage"/> frames drawn with the device's current
/// brightness, contrast and pattern controls.
/// </summary>
internal sealed class TestPatternFrameSource : ICaptureFrameSource
{
    private readonly TestPatternOptions _options;
    private readonly (uint Width, uint Height)[] _frameSizes;
    private readonly uint[] _frameRates;

    private readonly V4l2ControlSet _controls;

    /// <summary>Frames drawn with the values of <paramref name="controls"/> (the device's).</summary>
    public TestPatternFrameSource(TestPatternOptions options, (uint Width, uint Height)[] frameSizes, uint[] frameRates, V4l2ControlSet controls)
    {
        _options = options;
        _frameSizes = frameSizes;
        _frameRates = frameRates;
        _controls = controls;
    }

    public IReadOnlyList<CaptureFormat> Formats => PixelFormats.All;

    public ReadOnlySpan<(uint Width, uint Height)> FrameSizes => _frameSizes;

    public ReadOnlySpan<uint> FrameRates => _frameRates;

    public string InputName => "Test Pattern";

    public FrameLayout Layout(CaptureFormat format, uint width, uint height) =>
        FrameLayout.ForTestPattern(format.FourCc, (int)width, (int)height);

    public ICaptureFrameWriter OpenWriter() => new Writer(this);

    private static ReadOnlySpan<uint> ControlIds => [V4l2Const.CidBrightness, V4l2Const.CidContrast, V4l2Const.CidTestPattern];

    /// <summary>The current control values.</summary>
    public TestPatternControls CurrentControls
    {
        get
        {
            Span<int> values = stackalloc int[3];
            _controls.Read(ControlIds, values);
            return new TestPatternControls(values[0], values[1], values[2]);
        }
    }

    // One renderer per session: it keeps row scratch and is not thread-safe.
    private sealed class Writer(TestPatternFrameSource source) : ICaptureFrameWriter
    {
        private readonly TestPatternRenderer _renderer = new();

        public void Fill(ref CaptureFrame frame)
        {
            TestPatternOptions options = source._options;
            options.FillStarting?.Invoke();
            try
            {
                // A static image is rendered into an MMAP buffer once, at its first fill.
                if (frame.HoldsEarlierFrame && options.StaticImage)
                {
                    return;
                }
                var destination = new FrameDestination { Plane0 = frame.Plane0, Plane1 = frame.Plane1, Plane2 = frame.Plane2 };
                _renderer.Render((PixelFormatInfo)frame.Format, (int)frame.Width, (int)frame.Height, frame.Sequence,
                    source.CurrentControls, ref destination);
            }
            finally
            {
                options.FillEnded?.Invoke();
            }
        }
    }
}
