using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Frames;

/// <summary>
/// Converts a raw frame in any format the test-pattern camera produces (YUYV, NV12, YU12, NM12, YM12, RGB3, BGR3)
/// to 8-bit RGBA (R, G, B, A bytes; alpha 255; rows of 4·width bytes), for pictures people look at. Writes only
/// into the caller's buffer: no allocation.
/// <para>
/// YCbCr is read as <b>BT.601, limited range</b> (Y 16–235, Cb/Cr 16–240), because that is what the test pattern
/// generator writes (<see cref="Backends.TestPattern.TestPatternImage.ToYuv"/>, the 8-bit integer BT.601 matrix)
/// and what it reports (colorspace SMPTE170M, whose default encoding is 601 and quantization limited range). The
/// inverse uses the same matrix's 8-bit integer coefficients (256 × 1.164, 1.596, 0.391, 0.813, 2.018), so each
/// colour bar comes back as the generator's RGB within ±2. Chroma is not interpolated: every pixel of a 2×1 (4:2:2)
/// or 2×2 (4:2:0) block takes the block's one sample, which is how the generator subsamples (the block's top-left
/// pixel) and keeps bar edges sharp.
/// </para>
/// </summary>
public static class FrameConverter
{
    /// <summary>Bytes per pixel of the output.</summary>
    public const int RgbaBytesPerPixel = 4;

    /// <summary>Bytes of RGBA output for a <paramref name="width"/>×<paramref name="height"/> frame.</summary>
    public static int RgbaSize(int width, int height) => checked(width * height * RgbaBytesPerPixel);

    /// <summary>Converts the frame <paramref name="layout"/> describes to RGBA in <paramref name="rgba"/>.</summary>
    /// <param name="layout">Format, size and strides (throws <see cref="ArgumentException"/> when not convertible).</param>
    /// <param name="plane0">Memory plane 0 (the whole frame for the single-plane formats).</param>
    /// <param name="plane1">Memory plane 1 of NM12 (CbCr) and YM12 (Cb); empty otherwise.</param>
    /// <param name="plane2">Memory plane 2 of YM12 (Cr); empty otherwise.</param>
    /// <param name="rgba">At least <see cref="RgbaSize"/> bytes.</param>
    public static void ToRgba(in FrameLayout layout, ReadOnlySpan<byte> plane0, ReadOnlySpan<byte> plane1,
        ReadOnlySpan<byte> plane2, Span<byte> rgba)
    {
        if (layout.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(layout));
        }
        RequirePlane(layout, 0, plane0);
        RequirePlane(layout, 1, plane1);
        RequirePlane(layout, 2, plane2);
        if (rgba.Length < RgbaSize(layout.Width, layout.Height))
        {
            throw new ArgumentException($"the RGBA buffer holds {rgba.Length} bytes, the frame needs {RgbaSize(layout.Width, layout.Height)}", nameof(rgba));
        }
        switch (layout.FourCc)
        {
            case FourCc.Yuyv:
                FromYuyv(layout, plane0, rgba);
                break;
            case FourCc.Rgb24:
                FromRgb24(layout, plane0, rgba, red: 0, blue: 2);
                break;
            case FourCc.Bgr24:
                FromRgb24(layout, plane0, rgba, red: 2, blue: 0);
                break;
            case FourCc.Nv12:
                FromNv12(layout, plane0, plane0[(layout.Stride * layout.Height)..], rgba);
                break;
            case FourCc.Nv12M:
                FromNv12(layout, plane0, plane1, rgba);
                break;
            case FourCc.Yu12:
            {
                int cb = layout.Stride * layout.Height;
                int cr = cb + layout.ChromaStride * layout.ChromaHeight;
                FromYu12(layout, plane0, plane0[cb..], plane0[cr..], rgba);
                break;
            }
            default: // YM12 (Validate refused everything else)
                FromYu12(layout, plane0, plane1, plane2, rgba);
                break;
        }
    }

    private static void RequirePlane(in FrameLayout layout, int plane, ReadOnlySpan<byte> bytes)
    {
        long needed = layout.PlaneSize(plane);
        if (bytes.Length < needed)
        {
            throw new ArgumentException($"memory plane {plane} of a {layout.Width}x{layout.Height} {FourCc.ToString(layout.FourCc)} frame " +
                $"needs {needed} bytes, got {bytes.Length}");
        }
    }

    private static void FromRgb24(in FrameLayout layout, ReadOnlySpan<byte> plane, Span<byte> rgba, int red, int blue)
    {
        int width = layout.Width;
        for (int y = 0; y < layout.Height; y++)
        {
            ReadOnlySpan<byte> src = plane.Slice(y * layout.Stride, 3 * width);
            Span<byte> dst = rgba.Slice(y * width * RgbaBytesPerPixel, width * RgbaBytesPerPixel);
            for (int x = 0; x < width; x++)
            {
                dst[4 * x] = src[3 * x + red];
                dst[4 * x + 1] = src[3 * x + 1];
                dst[4 * x + 2] = src[3 * x + blue];
                dst[4 * x + 3] = 255;
            }
        }
    }

    private static void FromYuyv(in FrameLayout layout, ReadOnlySpan<byte> plane, Span<byte> rgba)
    {
        int width = layout.Width;
        for (int y = 0; y < layout.Height; y++)
        {
            ReadOnlySpan<byte> src = plane.Slice(y * layout.Stride, 4 * layout.ChromaWidth);
            Span<byte> dst = rgba.Slice(y * width * RgbaBytesPerPixel, width * RgbaBytesPerPixel);
            for (int x = 0; x < width; x++)
            {
                // Y0 Cb Y1 Cr: the pair's one chroma sample for both pixels.
                int pair = 4 * (x >> 1);
                StorePixel(dst, x, src[pair + 2 * (x & 1)], src[pair + 1], src[pair + 3]);
            }
        }
    }

    private static void FromNv12(in FrameLayout layout, ReadOnlySpan<byte> luma, ReadOnlySpan<byte> chroma, Span<byte> rgba)
    {
        int width = layout.Width;
        for (int y = 0; y < layout.Height; y++)
        {
            ReadOnlySpan<byte> lumaRow = luma.Slice(y * layout.Stride, width);
            ReadOnlySpan<byte> chromaRow = chroma.Slice((y >> 1) * layout.ChromaStride, 2 * layout.ChromaWidth);
            Span<byte> dst = rgba.Slice(y * width * RgbaBytesPerPixel, width * RgbaBytesPerPixel);
            for (int x = 0; x < width; x++)
            {
                int c = 2 * (x >> 1);
                StorePixel(dst, x, lumaRow[x], chromaRow[c], chromaRow[c + 1]);
            }
        }
    }

    private static void FromYu12(in FrameLayout layout, ReadOnlySpan<byte> luma, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgba)
    {
        int width = layout.Width;
        for (int y = 0; y < layout.Height; y++)
        {
            ReadOnlySpan<byte> lumaRow = luma.Slice(y * layout.Stride, width);
            ReadOnlySpan<byte> cbRow = cb.Slice((y >> 1) * layout.ChromaStride, layout.ChromaWidth);
            ReadOnlySpan<byte> crRow = cr.Slice((y >> 1) * layout.ChromaStride, layout.ChromaWidth);
            Span<byte> dst = rgba.Slice(y * width * RgbaBytesPerPixel, width * RgbaBytesPerPixel);
            for (int x = 0; x < width; x++)
            {
                StorePixel(dst, x, lumaRow[x], cbRow[x >> 1], crRow[x >> 1]);
            }
        }
    }

    /// <summary>BT.601 limited range Y'CbCr → R'G'B' (8-bit integer form, rounded) into pixel <paramref name="x"/>.</summary>
    private static void StorePixel(Span<byte> row, int x, byte luma, byte cb, byte cr)
    {
        int c = 298 * (luma - 16) + 128;
        int d = cb - 128, e = cr - 128;
        Span<byte> px = row.Slice(RgbaBytesPerPixel * x, RgbaBytesPerPixel);
        px[0] = Clamp((c + 409 * e) >> 8);
        px[1] = Clamp((c - 100 * d - 208 * e) >> 8);
        px[2] = Clamp((c + 516 * d) >> 8);
        px[3] = 255;
    }

    private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);
}
