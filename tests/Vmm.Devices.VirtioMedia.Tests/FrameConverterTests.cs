using System.Security.Cryptography;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The RGBA converter against the test pattern's own definition of the picture, and the device's
/// completed-frame observer.</summary>
public sealed class FrameConverterTests
{
    // BT.601 limited range in 8-bit integers loses at most a little on the way there and back.
    private const int Tolerance = 2;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static TheoryData<uint> AllFormats()
    {
        var data = new TheoryData<uint>();
        foreach (PixelFormatInfo f in PixelFormats.All)
        {
            data.Add(f.FourCc);
        }
        return data;
    }

    /// <summary>Every pixel (bars, moving box, frame counter) against <see cref="TestPatternImage.RgbAt"/>. All the
    /// picture's edges are even, so chroma subsampling never mixes two colours and no pixel is exempt.</summary>
    private static void AssertIsThePattern(ReadOnlySpan<byte> rgba, int w, int h, uint frame, TestPatternControls controls, string what)
    {
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                (byte r, byte g, byte b) = TestPatternImage.RgbAt(w, h, frame, controls, x, y);
                int i = 4 * (y * w + x);
                if (Math.Abs(rgba[i] - r) > Tolerance || Math.Abs(rgba[i + 1] - g) > Tolerance || Math.Abs(rgba[i + 2] - b) > Tolerance || rgba[i + 3] != 255)
                {
                    Assert.Fail($"{what}: pixel ({x}, {y}) is ({rgba[i]}, {rgba[i + 1]}, {rgba[i + 2]}, {rgba[i + 3]}), the pattern has ({r}, {g}, {b}, 255)");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void Every_format_converts_back_to_the_colours_the_pattern_was_made_of(uint fourcc)
    {
        const int w = 320, h = 240;
        foreach (uint frame in new uint[] { 0, 37, 0x89ABCDEF })
        {
            byte[][] planes = TestPatternImage.Render(fourcc, w, h, frame, TestPatternControls.Default);
            byte[] rgba = new byte[FrameConverter.RgbaSize(w, h)];
            FrameConverter.ToRgba(FrameLayout.ForTestPattern(fourcc, w, h), planes[0], planes[1], planes[2], rgba);
            AssertIsThePattern(rgba, w, h, frame, TestPatternControls.Default, $"{FourCc.ToString(fourcc)} frame {frame}");
        }
    }

    [Theory]
    [MemberData(nameof(AllFormats))]
    public void Brightness_contrast_and_the_grey_pattern_convert_back_too(uint fourcc)
    {
        const int w = 160, h = 120;
        foreach (TestPatternControls controls in new[] { new TestPatternControls(40, 200, 0), new TestPatternControls(-90, 60, 1), new TestPatternControls(0, 128, 2) })
        {
            byte[][] planes = TestPatternImage.Render(fourcc, w, h, 5, controls);
            byte[] rgba = new byte[FrameConverter.RgbaSize(w, h)];
            FrameConverter.ToRgba(FrameLayout.ForTestPattern(fourcc, w, h), planes[0], planes[1], planes[2], rgba);
            AssertIsThePattern(rgba, w, h, 5, controls, $"{FourCc.ToString(fourcc)} {controls}");
        }
    }

    [Fact]
    public void Each_colour_bar_comes_back_as_the_generators_rgb()
    {
        // The eight bars at level 192 and the box's white, one pixel each, through the YUV formats' matrix.
        (byte R, byte G, byte B)[] colours =
        [
            (192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192), (0, 0, 0), (255, 255, 255),
        ];
        foreach ((byte r, byte g, byte b) in colours)
        {
            (byte y, byte u, byte v) = TestPatternImage.ToYuv(r, g, b);
            byte[] yuyv = [y, u, y, v];
            byte[] rgba = new byte[8];
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Yuyv, 2, 1, 4), yuyv, default, default, rgba);
            Assert.InRange(rgba[0], r - Tolerance, r + Tolerance);
            Assert.InRange(rgba[1], g - Tolerance, g + Tolerance);
            Assert.InRange(rgba[2], b - Tolerance, b + Tolerance);
        }
    }

    [Theory]
    [InlineData(FourCc.Nv12)]
    [InlineData(FourCc.Yu12)]
    [InlineData(FourCc.Yuyv)]
    [InlineData(FourCc.Rgb24)]
    [InlineData(FourCc.Nv12M)]
    [InlineData(FourCc.Yu12M)]
    public void Rows_padded_past_the_width_convert_like_tight_ones(uint fourcc)
    {
        // A host camera may pad rows (bytesperline > the row): copy the tight frame row by row into padded planes.
        const int w = 160, h = 120, pad = 64;
        byte[][] tight = TestPatternImage.Render(fourcc, w, h, 9, TestPatternControls.Default);
        FrameLayout tightLayout = FrameLayout.ForTestPattern(fourcc, w, h);
        FrameLayout padded = FrameLayout.Create(fourcc, w, h, tightLayout.Stride + pad,
            tightLayout.ChromaStride == 0 ? 0 : tightLayout.ChromaStride + pad);
        byte[][] planes = new byte[3][];
        for (int p = 0; p < 3; p++)
        {
            planes[p] = new byte[padded.PlaneSize(p)];
            RandomNumberGenerator.Fill(planes[p]); // padding bytes must not show
        }
        // Rows of each tight region (luma/packed, then chroma) go to the same rows of the padded one.
        void CopyRows(ReadOnlySpan<byte> from, int fromStride, Span<byte> to, int toStride, int rows, int rowBytes)
        {
            for (int r = 0; r < rows; r++)
            {
                from.Slice(r * fromStride, rowBytes).CopyTo(to.Slice(r * toStride));
            }
        }
        int rowBytes = tightLayout.Stride;
        int ch = tightLayout.ChromaHeight;
        switch (fourcc)
        {
            case FourCc.Yuyv or FourCc.Rgb24:
                CopyRows(tight[0], rowBytes, planes[0], padded.Stride, h, rowBytes);
                break;
            case FourCc.Nv12:
                CopyRows(tight[0], rowBytes, planes[0], padded.Stride, h, w);
                CopyRows(tight[0].AsSpan(w * h), w, planes[0].AsSpan(padded.Stride * h), padded.ChromaStride, ch, w);
                break;
            case FourCc.Yu12:
                CopyRows(tight[0], w, planes[0], padded.Stride, h, w);
                CopyRows(tight[0].AsSpan(w * h), w / 2, planes[0].AsSpan(padded.Stride * h), padded.ChromaStride, ch, w / 2);
                CopyRows(tight[0].AsSpan(w * h + w / 2 * ch), w / 2, planes[0].AsSpan(padded.Stride * h + padded.ChromaStride * ch), padded.ChromaStride, ch, w / 2);
                break;
            case FourCc.Nv12M:
                CopyRows(tight[0], w, planes[0], padded.Stride, h, w);
                CopyRows(tight[1], w, planes[1], padded.ChromaStride, ch, w);
                break;
            default: // YM12
                CopyRows(tight[0], w, planes[0], padded.Stride, h, w);
                CopyRows(tight[1], w / 2, planes[1], padded.ChromaStride, ch, w / 2);
                CopyRows(tight[2], w / 2, planes[2], padded.ChromaStride, ch, w / 2);
                break;
        }
        byte[] expected = new byte[FrameConverter.RgbaSize(w, h)];
        byte[] actual = new byte[expected.Length];
        FrameConverter.ToRgba(tightLayout, tight[0], tight[1], tight[2], expected);
        FrameConverter.ToRgba(padded, planes[0], planes[1], planes[2], actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void A_bgr_frame_is_an_rgb_frame_with_red_and_blue_swapped()
    {
        byte[] bgr = [10, 20, 30, 40, 50, 60];
        byte[] rgba = new byte[8];
        FrameConverter.ToRgba(FrameLayout.Create(FourCc.Bgr24, 2, 1, 6), bgr, default, default, rgba);
        Assert.Equal(new byte[] { 30, 20, 10, 255, 60, 50, 40, 255 }, rgba);
    }

    [Fact]
    public void Bad_layouts_and_short_buffers_are_refused_before_any_pixel_is_read()
    {
        byte[] rgba = new byte[FrameConverter.RgbaSize(16, 16)];
        byte[] nv12 = new byte[16 * 16 * 3 / 2];
        Assert.Contains("cannot be converted", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Make('M', 'J', 'P', 'G'), 16, 16, 16), nv12, default, default, rgba)).Message);
        Assert.Contains("bytesperline 8 is shorter", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Nv12, 16, 16, 8), nv12, default, default, rgba)).Message);
        Assert.Contains("memory plane 0", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Nv12, 16, 16, 16), nv12.AsSpan(1), default, default, rgba)).Message);
        Assert.Contains("memory plane 1", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Nv12M, 16, 16, 16), nv12.AsSpan(0, 256), default, default, rgba)).Message);
        Assert.Contains("RGBA buffer", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Nv12, 16, 16, 16), nv12, default, default, rgba.AsSpan(4))).Message);
        Assert.Contains("out of range", Assert.Throws<ArgumentException>(() =>
            FrameConverter.ToRgba(FrameLayout.Create(FourCc.Nv12, 0, 16, 16), nv12, default, default, rgba)).Message);
    }

    [Theory]
    [InlineData(FourCc.Nv12, false)]
    [InlineData(FourCc.Yuyv, true)]
    [InlineData(FourCc.Nv12M, true)]
    [InlineData(FourCc.Yu12M, true)]
    public void The_testbed_frame_converts_with_the_layout_of_its_format(uint fourcc, bool multiPlanar)
    {
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Format = fourcc, MultiPlanar = multiPlanar, Fps = 120, SharedMemorySize = 64UL << 20 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(fourcc, 352, 288, multiPlanar);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        using (TestbedFrame frame = s.DequeueFrame(Timeout))
        {
            Assert.Equal(FrameLayout.ForTestPattern(fourcc, 352, 288), frame.Layout);
            byte[] rgba = new byte[FrameConverter.RgbaSize(352, 288)];
            frame.ToRgba(rgba);
            AssertIsThePattern(rgba, 352, 288, frame.Sequence, TestPatternControls.Default, FourCc.ToString(fourcc));
        }
        s.StreamOff();
    }

    /// <summary>Records what the device shows its observer: sequence, layout and the planes' checksum.</summary>
    private sealed class RecordingObserver : IFrameObserver
    {
        public readonly List<(uint Session, uint Sequence, FrameLayout Layout, uint Checksum)> Frames = [];

        public void FrameCompleted(in CompletedFrame frame)
        {
            uint checksum = FrameChecksum.Compute(frame.Plane0, frame.Plane1, frame.Plane2);
            lock (Frames)
            {
                Frames.Add((frame.SessionId, frame.Sequence, frame.Layout, checksum));
            }
        }
    }

    [Theory]
    [InlineData(FourCc.Nv12, false)]
    [InlineData(FourCc.Yu12M, true)]
    public void The_observer_sees_every_frame_the_guest_receives_with_the_same_bytes(uint fourcc, bool multiPlanar)
    {
        var observer = new RecordingObserver();
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Format = fourcc, MultiPlanar = multiPlanar, Fps = 120, SharedMemorySize = 64UL << 20 });
        bed.Device.FrameObserver = observer;
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(fourcc, 320, 240, multiPlanar);
        s.RequestBuffers(3, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        var received = new List<(uint Sequence, uint Checksum)>();
        for (int i = 0; i < 6; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            received.Add((frame.Sequence, frame.Checksum()));
        }
        s.StreamOff();
        lock (observer.Frames)
        {
            // The observer ran before each DQBUF event was queued, so it has seen at least every received frame.
            Assert.True(observer.Frames.Count >= received.Count);
            for (int i = 0; i < received.Count; i++)
            {
                (uint session, uint sequence, FrameLayout layout, uint checksum) = observer.Frames[i];
                Assert.Equal(s.Id, session);
                Assert.Equal(received[i].Sequence, sequence);
                Assert.Equal(received[i].Checksum, checksum);
                Assert.Equal(TestPatternImage.ExpectedChecksum(fourcc, 320, 240, sequence, TestPatternControls.Default), checksum);
                Assert.Equal(FrameLayout.ForTestPattern(fourcc, 320, 240), layout);
            }
        }
    }
}
