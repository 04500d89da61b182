using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

public class TestPatternTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(47)]
    [InlineData(96)]
    [InlineData(100)]
    [InlineData(301)]
    public void Fill3MatchesScalarTripleForEveryLength(int length)
    {
        byte[] dst = new byte[length + 4];
        dst.AsSpan().Fill(0xEE);
        PatternFill.Fill3(dst.AsSpan(0, length), 1, 2, 3);
        for (int i = 0; i < length; i++)
        {
            Assert.Equal((byte)(i % 3 + 1), dst[i]);
        }
        Assert.All(dst[length..], b => Assert.Equal(0xEE, b));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(64)]
    [InlineData(70)]
    public void Fill4AndFill2RepeatTheirPattern(int length)
    {
        byte[] dst = new byte[length];
        PatternFill.Fill4(dst, 10, 20, 30, 40);
        for (int i = 0; i < length; i++)
        {
            Assert.Equal((byte)((i % 4 + 1) * 10), dst[i]);
        }
        PatternFill.Fill2(dst, 5, 6);
        for (int i = 0; i < length; i++)
        {
            Assert.Equal((byte)(i % 2 == 0 ? 5 : 6), dst[i]);
        }
    }

    // Every pixel of RGB24 equals the documented model; independent of the renderer's row/run machinery.
    [Theory]
    [InlineData(160, 120, 0u)]
    [InlineData(640, 480, 77u)]
    [InlineData(1282, 722, 12345u)]
    public void Rgb24EveryPixelMatchesModel(int w, int h, uint frame)
    {
        var c = new TestPatternControls(10, 150, 0);
        byte[] rgb = TestPatternImage.Render(FourCc.Rgb24, w, h, frame, c)[0];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                (byte r, byte g, byte b) = TestPatternImage.RgbAt(w, h, frame, c, x, y);
                int o = (y * w + x) * 3;
                if (rgb[o] != r || rgb[o + 1] != g || rgb[o + 2] != b)
                {
                    Assert.Fail($"pixel ({x},{y}) = {rgb[o]},{rgb[o + 1]},{rgb[o + 2]}, expected {r},{g},{b}");
                }
            }
        }
    }

    [Fact]
    public void BarsHaveTheDocumentedColours()
    {
        // Bar 1 is yellow at 192; brightness/contrast neutral; row below the counter.
        (byte r, byte g, byte b) = TestPatternImage.RgbAt(640, 480, 0, TestPatternControls.Default, 640 / 8 + 5, 400);
        Assert.Equal((192, 192, 0), ((int)r, (int)g, (int)b));
        (r, g, b) = TestPatternImage.RgbAt(640, 480, 0, TestPatternControls.Default, 639, 400);
        Assert.Equal((0, 0, 0), ((int)r, (int)g, (int)b));
    }

    [Theory]
    [InlineData(FourCc.Yuyv)]
    [InlineData(FourCc.Nv12)]
    [InlineData(FourCc.Yu12)]
    [InlineData(FourCc.Nv12M)]
    [InlineData(FourCc.Yu12M)]
    [InlineData(FourCc.Bgr24)]
    public void YuvAndBgrPixelsMatchModel(uint fourcc)
    {
        const int w = 320, h = 240;
        const uint frame = 5;
        TestPatternControls c = TestPatternControls.Default;
        byte[][] planes = TestPatternImage.Render(fourcc, w, h, frame, c);
        for (int y = 0; y < h; y += 7)
        {
            for (int x = 0; x < w; x += 2)
            {
                (byte r, byte g, byte b) = TestPatternImage.RgbAt(w, h, frame, c, x, y);
                (byte yy, byte u, byte v) = TestPatternImage.ToYuv(r, g, b);
                if (fourcc == FourCc.Bgr24)
                {
                    Assert.Equal((b, g, r), (planes[0][(y * w + x) * 3], planes[0][(y * w + x) * 3 + 1], planes[0][(y * w + x) * 3 + 2]));
                    continue;
                }
                (int ey, int eu, int ev) = ReadYuv(fourcc, planes, w, h, x, y);
                Assert.Equal(yy, ey);
                // Chroma comes from the top-left pixel of the block.
                (byte cr, byte cg, byte cb) = TestPatternImage.RgbAt(w, h, frame, c, x & ~1, fourcc == FourCc.Yuyv ? y : y & ~1);
                (_, byte cu, byte cv) = TestPatternImage.ToYuv(cr, cg, cb);
                Assert.Equal(cu, eu);
                Assert.Equal(cv, ev);
                _ = (u, v);
            }
        }
    }

    private static (int Y, int U, int V) ReadYuv(uint fourcc, byte[][] p, int w, int h, int x, int y)
    {
        int cx = x / 2, cy = y / 2;
        return fourcc switch
        {
            FourCc.Yuyv => (p[0][y * w * 2 + x * 2], p[0][y * w * 2 + (x & ~1) * 2 + 1], p[0][y * w * 2 + (x & ~1) * 2 + 3]),
            FourCc.Nv12 => (p[0][y * w + x], p[0][w * h + cy * w + cx * 2], p[0][w * h + cy * w + cx * 2 + 1]),
            FourCc.Nv12M => (p[0][y * w + x], p[1][cy * w + cx * 2], p[1][cy * w + cx * 2 + 1]),
            FourCc.Yu12 => (p[0][y * w + x], p[0][w * h + cy * (w / 2) + cx], p[0][w * h + w * h / 4 + cy * (w / 2) + cx]),
            _ => (p[0][y * w + x], p[1][cy * (w / 2) + cx], p[2][cy * (w / 2) + cx]),
        };
    }

    [Theory]
    [InlineData(FourCc.Yuyv)]
    [InlineData(FourCc.Nv12)]
    [InlineData(FourCc.Rgb24)]
    public void FrameCounterReadsBack(uint fourcc)
    {
        foreach (uint n in new uint[] { 0, 1, 0xA5A5_0F0F, uint.MaxValue })
        {
            byte[] plane0 = TestPatternImage.Render(fourcc, 640, 480, n, new TestPatternControls(-50, 60, 0))[0];
            Assert.Equal(n, TestPatternImage.ReadFrameCounter(fourcc, plane0, 640));
        }
    }

    [Fact]
    public void BoxMovesAndControlsChangeTheChecksum()
    {
        uint f0 = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 640, 480, 0, TestPatternControls.Default);
        uint f1 = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 640, 480, 1, TestPatternControls.Default);
        uint bright = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 640, 480, 0, new TestPatternControls(40, 128, 0));
        uint contrast = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 640, 480, 0, new TestPatternControls(0, 64, 0));
        uint grey = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 640, 480, 0, new TestPatternControls(0, 128, 2));
        Assert.Equal(5, new HashSet<uint> { f0, f1, bright, contrast, grey }.Count);
        Assert.NotEqual(TestPatternImage.BoxPosition(640, 480, 0), TestPatternImage.BoxPosition(640, 480, 1));
    }

    [Fact]
    public void ChecksumIsStandardCrc32C()
    {
        // The CRC-32C check value: "123456789" → 0xE3069283.
        Assert.Equal(0xE3069283u, TestPatternImage.Checksum("123456789"u8));
    }

    [Fact]
    public void ScatterDestinationEqualsContiguous()
    {
        using var memory = Vmm.Core.Memory.GuestMemory.CreateAnonymous((new Vmm.Core.Memory.GuestAddress(0), 16UL << 20));
        PixelFormatInfo info = PixelFormats.Find(FourCc.Yuyv)!;
        int size = (int)info.SizeImage(0, 320, 240);
        // Three odd-sized segments at scattered guest addresses.
        GuestSegment[] segs = [new(new(0x100123), 1000), new(new(0x400000), 50000), new(new(0x900000), (uint)(size - 51000))];
        var dst = new FrameDestination { Plane0 = new PlaneDestination(memory, segs) };
        new TestPatternRenderer().Render(info, 320, 240, 9, TestPatternControls.Default, ref dst);
        byte[] gathered = new byte[size];
        int o = 0;
        foreach (GuestSegment s in segs)
        {
            memory.ReadBytes(s.Start, gathered.AsSpan(o, (int)s.Length));
            o += (int)s.Length;
        }
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, 9, TestPatternControls.Default), TestPatternImage.Checksum(gathered));
    }
}

public class TestPatternOptionsTests
{
    [Fact]
    public void ParsesAllKeys()
    {
        Assert.True(TestPatternOptions.TryParse("test-pattern,width=1280,height=720,fps=60,format=NV12", out var o, out string? error), error);
        Assert.Equal((1280u, 720u, 60u, FourCc.Nv12), (o!.Width, o.Height, o.Fps, o.Format));
        Assert.True(TestPatternOptions.TryParse("test-pattern", out o, out _));
        Assert.Equal(new TestPatternOptions(), o);
        Assert.True(TestPatternOptions.TryParse("test-pattern,size=3840x2160,format=RGB3", out o, out _));
        Assert.Equal((3840u, 2160u, FourCc.Rgb24), (o!.Width, o.Height, o.Format));
        // One API: single-planar unless asked for or the format needs multi-planar.
        Assert.False(o.UsesMultiPlanarApi);
        Assert.True(TestPatternOptions.TryParse("test-pattern,api=mplane", out o, out _));
        Assert.Equal((true, true), (o!.MultiPlanar, o.UsesMultiPlanarApi));
        Assert.True(TestPatternOptions.TryParse("test-pattern,format=NM12", out o, out _));
        Assert.Equal((null, true), (o!.MultiPlanar, o.UsesMultiPlanarApi));
        Assert.True(TestPatternOptions.TryParse("test-pattern,api=single,format=NV12", out o, out _));
        Assert.False(o!.UsesMultiPlanarApi);
    }

    [Theory]
    [InlineData("camera", "unknown media backend")]
    [InlineData("test-pattern,width=159", "width 159")]
    [InlineData("test-pattern,width=641", "even")]
    [InlineData("test-pattern,height=2162", "height 2162")]
    [InlineData("test-pattern,fps=0", "fps 0")]
    [InlineData("test-pattern,fps=121", "fps 121")]
    [InlineData("test-pattern,format=MJPG", "not supported")]
    [InlineData("test-pattern,format=TOOLONG", "not a fourcc")]
    [InlineData("test-pattern,width=abc", "not a non-negative integer")]
    [InlineData("test-pattern,width=640,width=640", "given twice")]
    [InlineData("test-pattern,colour=red", "unknown key")]
    [InlineData("test-pattern,fps", "expected key=value")]
    [InlineData("test-pattern,api=both", "'single' or 'mplane'")]
    [InlineData("test-pattern,api=single,format=YM12", "needs api=mplane")]
    public void RejectsWithOneLineError(string text, string fragment)
    {
        Assert.False(TestPatternOptions.TryParse(text, out _, out string? error));
        Assert.Contains(fragment, error);
        Assert.DoesNotContain('\n', error);
    }
}
