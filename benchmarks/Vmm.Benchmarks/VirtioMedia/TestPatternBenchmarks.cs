using BenchmarkDotNet.Attributes;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Benchmarks.VirtioMedia;

/// <summary>Test-pattern generation straight into a frame-sized destination, per format, at 1080p and 4K.
/// ns/frame → achievable fps = 1e9 / mean.</summary>
[MemoryDiagnoser]
public class TestPatternBenchmarks
{
    private readonly TestPatternRenderer _renderer = new();
    private byte[][] _planes = [];
    private PixelFormatInfo _info = null!;
    private uint _frame;

    [Params(FourCc.Yuyv, FourCc.Nv12, FourCc.Yu12M, FourCc.Rgb24)]
    public uint Format { get; set; }

    [Params(1920, 3840)]
    public int Width { get; set; }

    private int Height => Width == 3840 ? 2160 : 1080;

    [GlobalSetup]
    public void Setup()
    {
        _info = PixelFormats.Find(Format)!;
        _planes = new byte[3][];
        for (int p = 0; p < 3; p++)
        {
            _planes[p] = new byte[p < _info.MemoryPlanes ? _info.SizeImage(p, (uint)Width, (uint)Height) : 0];
        }
    }

    [Benchmark]
    public void RenderFrame()
    {
        var dst = new FrameDestination
        {
            Plane0 = new PlaneDestination(_planes[0]),
            Plane1 = new PlaneDestination(_planes[1]),
            Plane2 = new PlaneDestination(_planes[2]),
        };
        _renderer.Render(_info, Width, Height, _frame++, TestPatternControls.Default, ref dst);
    }
}
