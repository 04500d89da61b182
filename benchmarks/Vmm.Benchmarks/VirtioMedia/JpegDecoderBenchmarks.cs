using BenchmarkDotNet.Attributes;
using Vmm.Devices.VirtioMedia.Backends.JpegDecoder;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Testing.VirtioMedia;

namespace Vmm.Benchmarks.VirtioMedia;

/// <summary>
/// The JPEG decoder's work for one 1920×1080 frame (a 4:2:0 JPEG of a smooth image, quality 90): header, libjpeg-turbo,
/// and our chroma layout, straight into a buffer as an MMAP CAPTURE buffer is. The baseline is one copy of the decoded
/// frame, the cost the zero-copy design avoids; the memory diagnoser shows a frame allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class JpegDecoderBenchmarks
{
    private const int Width = 1920, Height = 1080, AlignedHeight = 1088;

    private JpegFrameDecoder _decoder = null!;
    private byte[] _jpeg = null!;
    private byte[] _frame = null!, _copy = null!;
    private CaptureFormat _format = null!;

    [Params("NV12", "YU12", "RGB3")]
    public string Format { get; set; } = "NV12";

    [GlobalSetup]
    public void Setup()
    {
        _decoder = new JpegFrameDecoder();
        _jpeg = TestJpeg.Encode(TestJpeg.Gradient(Width, Height), Width, Height, quality: 90);
        _format = new JpegCodec().DecodedFormats.First(f => Devices.VirtioMedia.V4l2.FourCc.ToString(f.FourCc) == Format);
        _frame = new byte[_format.SizeImage(0, Width, AlignedHeight)];
        _copy = new byte[_frame.Length];
        if (!Decode())
        {
            throw new InvalidOperationException("the benchmark JPEG does not decode");
        }
    }

    [Benchmark(Baseline = true)]
    public void CopyDecodedFrame() => _frame.AsSpan().CopyTo(_copy);

    [Benchmark]
    public bool Decode()
    {
        if (!_decoder.TryReadHeader(_jpeg, out CodedFrameInfo info))
        {
            return false;
        }
        var frame = new CaptureFrame { Format = _format, Width = Width, Height = AlignedHeight, Plane0 = new PlaneDestination(_frame) };
        return _decoder.Decode(_jpeg, info, ref frame);
    }

    [GlobalCleanup]
    public void Cleanup() => _decoder.Dispose();
}
