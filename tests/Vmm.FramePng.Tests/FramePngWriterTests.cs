using SkiaSharp;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.FramePng.Tests;

/// <summary>PNG files written through SkiaSharp, read back with SkiaSharp's decoder.</summary>
public sealed class FramePngWriterTests : IDisposable
{
    private const int Tolerance = 2;
    private readonly string _dir = Directory.CreateTempSubdirectory("vmm-png-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<uint, bool> FormatsOnBothApis() => new()
    {
        { FourCc.Yuyv, false }, { FourCc.Nv12, false }, { FourCc.Yu12, false }, { FourCc.Rgb24, false }, { FourCc.Bgr24, false },
        { FourCc.Nv12M, true }, { FourCc.Yu12M, true },
    };

    [Theory]
    [MemberData(nameof(FormatsOnBothApis))]
    public void A_testbed_frame_saved_as_png_decodes_to_its_size_and_the_pattern_colours(uint fourcc, bool multiPlanar)
    {
        const int w = 640, h = 480;
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Format = fourcc, MultiPlanar = multiPlanar, Fps = 120, SharedMemorySize = 64UL << 20 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(fourcc, w, h, multiPlanar);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        string path = Path.Combine(_dir, $"{FourCc.ToString(fourcc)}.png");
        uint sequence;
        using (TestbedFrame frame = s.DequeueFrame(TimeSpan.FromSeconds(5)))
        {
            sequence = frame.Sequence;
            frame.SavePng(path);
        }
        s.StreamOff();

        using SKBitmap png = SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path} is not an image SkiaSharp can decode");
        Assert.Equal(w, png.Width);
        Assert.Equal(h, png.Height);
        // Each bar's centre on rows through the counter, the box's rows and below it: the pattern's own colours.
        foreach (int y in new[] { 4, h / 8, h / 4, h / 2, h - 1 })
        {
            for (int bar = 0; bar < 8; bar++)
            {
                int x = (TestPatternImage.BarStart(w, bar) + TestPatternImage.BarStart(w, bar + 1)) / 2;
                AssertColour(png.GetPixel(x, y), TestPatternImage.RgbAt(w, h, sequence, TestPatternControls.Default, x, y), $"({x}, {y})");
            }
        }
    }

    private static void AssertColour(SKColor actual, (byte R, byte G, byte B) expected, string where)
    {
        Assert.True(Math.Abs(actual.Red - expected.R) <= Tolerance && Math.Abs(actual.Green - expected.G) <= Tolerance &&
                    Math.Abs(actual.Blue - expected.B) <= Tolerance && actual.Alpha == 255,
            $"pixel {where} is {actual}, the pattern has ({expected.R}, {expected.G}, {expected.B})");
    }

    [Fact]
    public void Png_keeps_every_rgba_pixel_exactly()
    {
        const int w = 37, h = 23; // odd sizes: no row is a multiple of anything
        byte[] rgba = new byte[w * h * 4];
        new Random(10).NextBytes(rgba);
        for (int i = 3; i < rgba.Length; i += 4)
        {
            rgba[i] = 255; // frames are opaque
        }
        using var stream = new MemoryStream();
        FramePngWriter.WriteRgba(stream, rgba, w, h);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, stream.ToArray()[..4]);
        stream.Position = 0;
        using SKBitmap png = SKBitmap.Decode(stream);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = 4 * (y * w + x);
                Assert.Equal(new SKColor(rgba[i], rgba[i + 1], rgba[i + 2], 255), png.GetPixel(x, y));
            }
        }
    }

    [Fact]
    public void A_frame_that_cannot_be_written_leaves_no_file_and_says_why()
    {
        string missing = Path.Combine(_dir, "missing", "frame.png");
        Assert.ThrowsAny<IOException>(() => FramePngWriter.SaveRgba(missing, new byte[16], 2, 2));
        Assert.False(File.Exists(missing));

        string path = Path.Combine(_dir, "short.png");
        Assert.Throws<ArgumentException>(() => FramePngWriter.SaveRgba(path, new byte[15], 2, 2));
        Assert.False(File.Exists(path));

        Assert.Throws<ArgumentException>(() => FramePngWriter.SaveFrame(path, FrameLayout.Create(FourCc.Nv12, 4, 4, 4), new byte[10]));
        Assert.False(File.Exists(path));
    }
}
