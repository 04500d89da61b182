using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Frames;

/// <summary>
/// Where the pixels of one raw frame are in its memory planes: the pixel format, the size, and the two strides a
/// V4L2 format gives (<c>bytesperline</c>). <see cref="Stride"/> is the packed row (YUYV, RGB3, BGR3) or the luma
/// row; <see cref="ChromaStride"/> the chroma row: NV12 and NM12 interleave Cb and Cr in one row, YU12 and YM12
/// keep Cb and Cr in separate planes of that row length. For the single-plane formats V4L2 derives the chroma
/// stride from the luma one (NV12: equal, YU12: half), which <see cref="Create"/> does too.
/// </summary>
/// <param name="FourCc">The V4L2 pixel format (<see cref="V4l2.FourCc"/>).</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Stride">Bytes per row of the packed or luma plane.</param>
/// <param name="ChromaStride">Bytes per row of a chroma plane (0 for the packed formats).</param>
public readonly record struct FrameLayout(uint FourCc, int Width, int Height, int Stride, int ChromaStride)
{
    /// <summary>The layout of a format that V4L2 describes by one <c>bytesperline</c> (plane 0), and for the
    /// multi-planar formats optionally that of plane 1 (<paramref name="chromaStride"/>, 0 to derive it).</summary>
    public static FrameLayout Create(uint fourcc, int width, int height, int stride, int chromaStride = 0)
    {
        if (chromaStride == 0)
        {
            chromaStride = fourcc switch
            {
                V4l2.FourCc.Nv12 or V4l2.FourCc.Nv12M => stride,
                V4l2.FourCc.Yu12 or V4l2.FourCc.Yu12M => stride / 2,
                _ => 0,
            };
        }
        return new FrameLayout(fourcc, width, height, stride, chromaStride);
    }

    /// <summary>The layout the test-pattern camera writes (rows without padding, <see cref="PixelFormatInfo.BytesPerLine"/>).</summary>
    public static FrameLayout ForTestPattern(uint fourcc, int width, int height)
    {
        PixelFormatInfo info = PixelFormats.Find(fourcc) ?? throw new ArgumentException($"unsupported format {V4l2.FourCc.ToString(fourcc)}", nameof(fourcc));
        return Create(fourcc, width, height, (int)info.BytesPerLine(0, (uint)width),
            info.MemoryPlanes > 1 ? (int)info.BytesPerLine(1, (uint)width) : 0);
    }

    /// <summary>The layout an S_FMT/G_FMT answer describes (single- or multi-planar).</summary>
    public static FrameLayout FromFormat(in V4l2Format format)
    {
        if (format.Type == (uint)V4l2BufferType.VideoCaptureMplane || format.Type == (uint)V4l2BufferType.VideoOutputMplane)
        {
            V4l2PixFormatMplane mp = format.PixMp;
            return Create(mp.PixelFormat, (int)mp.Width, (int)mp.Height, (int)mp.PlaneFmt(0).BytesPerLine,
                mp.NumPlanes > 1 ? (int)mp.PlaneFmt(1).BytesPerLine : 0);
        }
        return Create(format.Pix.PixelFormat, (int)format.Pix.Width, (int)format.Pix.Height, (int)format.Pix.BytesPerLine);
    }

    /// <summary>Memory planes the format uses: 3 for YM12, 2 for NM12, 1 for the others.</summary>
    public int MemoryPlanes => FourCc switch
    {
        V4l2.FourCc.Yu12M => 3,
        V4l2.FourCc.Nv12M => 2,
        _ => 1,
    };

    /// <summary>Chroma rows of a 4:2:0 format (odd heights round up, as V4L2 does).</summary>
    public int ChromaHeight => (Height + 1) / 2;

    /// <summary>Chroma samples per row of a 4:2:0 format (odd widths round up).</summary>
    public int ChromaWidth => (Width + 1) / 2;

    /// <summary>Bytes memory plane <paramref name="plane"/> must hold for this layout (rows × stride).</summary>
    public long PlaneSize(int plane) => FourCc switch
    {
        V4l2.FourCc.Yuyv or V4l2.FourCc.Rgb24 or V4l2.FourCc.Bgr24 => plane == 0 ? (long)Stride * Height : 0,
        V4l2.FourCc.Nv12 or V4l2.FourCc.Yu12 => plane == 0 ? (long)Stride * Height + (FourCc == V4l2.FourCc.Yu12 ? 2L : 1L) * ChromaStride * ChromaHeight : 0,
        V4l2.FourCc.Nv12M => plane == 0 ? (long)Stride * Height : plane == 1 ? (long)ChromaStride * ChromaHeight : 0,
        V4l2.FourCc.Yu12M => plane == 0 ? (long)Stride * Height : plane <= 2 ? (long)ChromaStride * ChromaHeight : 0,
        _ => 0,
    };

    /// <summary>Null when the layout can be converted, otherwise why not (one line).</summary>
    public string? Validate()
    {
        int packedBytesPerPixel = FourCc switch
        {
            V4l2.FourCc.Yuyv => 2,
            V4l2.FourCc.Rgb24 or V4l2.FourCc.Bgr24 => 3,
            V4l2.FourCc.Nv12 or V4l2.FourCc.Nv12M or V4l2.FourCc.Yu12 or V4l2.FourCc.Yu12M => 1,
            _ => 0,
        };
        if (packedBytesPerPixel == 0)
        {
            return $"pixel format {V4l2.FourCc.ToString(FourCc)} cannot be converted";
        }
        if (Width <= 0 || Height <= 0 || Width > 1 << 15 || Height > 1 << 15)
        {
            return $"frame size {Width}x{Height} is out of range";
        }
        // YUYV stores pixels in pairs: a row of an odd width still holds a whole pair.
        int rowBytes = FourCc == V4l2.FourCc.Yuyv ? 4 * ChromaWidth : packedBytesPerPixel * Width;
        if (Stride < rowBytes)
        {
            return $"bytesperline {Stride} is shorter than a row of {rowBytes} bytes";
        }
        int chromaRowBytes = FourCc switch
        {
            V4l2.FourCc.Nv12 or V4l2.FourCc.Nv12M => 2 * ChromaWidth,
            V4l2.FourCc.Yu12 or V4l2.FourCc.Yu12M => ChromaWidth,
            _ => 0,
        };
        if (ChromaStride < chromaRowBytes)
        {
            return $"chroma bytesperline {ChromaStride} is shorter than a chroma row of {chromaRowBytes} bytes";
        }
        return null;
    }
}
