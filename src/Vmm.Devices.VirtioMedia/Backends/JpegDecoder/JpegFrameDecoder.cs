using System.Buffers;
using System.Runtime.Intrinsics;
using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.JpegDecoder;

/// <summary>How a decoded format's single memory plane is laid out.</summary>
internal enum DecodedLayout { Nv12, Yu12, Rgb24, Bgrx32 }

/// <summary>A format the JPEG decoder writes into CAPTURE buffers: one memory plane, at the buffer's aligned size.</summary>
internal sealed record DecodedFormat(uint FourCc, string Description, DecodedLayout Layout)
    : CaptureFormat(FourCc, Description, 1, false)
{
    public bool IsYuv => Layout is DecodedLayout.Nv12 or DecodedLayout.Yu12;

    public override uint BytesPerLine(int plane, uint width) => Layout switch
    {
        DecodedLayout.Rgb24 => 3 * width,
        DecodedLayout.Bgrx32 => 4 * width,
        _ => width, // NV12's interleaved chroma rows and YU12's half-width ones derive from the luma stride
    };

    public override uint SizeImage(int plane, uint width, uint height) => Layout switch
    {
        DecodedLayout.Rgb24 => 3 * width * height,
        DecodedLayout.Bgrx32 => 4 * width * height,
        _ => width * height * 3 / 2,
    };

    // A JPEG holds sRGB pictures as full-range BT.601 Y'CbCr (JFIF); decoded YUV keeps that encoding. (V4L2's JPEG
    // colorspace names the same thing, but decoders report sRGB on CAPTURE, as v4l2-compliance checks.)
    public override uint Colorspace => V4l2Const.ColorspaceSrgb;

    public override uint YcbcrEncoding => IsYuv ? V4l2Const.YcbcrEnc601 : V4l2Const.YcbcrEncDefault;

    public override uint Quantization => IsYuv ? V4l2Const.QuantizationFullRange : V4l2Const.QuantizationDefault;
}

/// <summary>
/// One session's JPEG decoder over TurboJPEG. Luma and RGB are decoded straight into the CAPTURE buffer when it is
/// an MMAP buffer; chroma goes through scratch planes, which NV12 needs anyway (TurboJPEG writes planar chroma) and
/// which keep every write inside memory sized for the buffer whatever the stream claims. A SHARED_PAGES buffer is
/// decoded into a scratch frame and written out. Scratch memory is rented for the frame from the shared pool, not
/// kept per session: a guest with many sessions cannot make each hold the memory of its largest frame, and frames
/// after the first allocate nothing.
/// </summary>
internal sealed class JpegFrameDecoder : IFrameDecoder
{
    private readonly TurboJpegHandle _handle;

    // The subsampling of the header read last: the chroma geometry Decode assumes. A guest that rewrites an MMAP
    // buffer between the two calls changes only what the pixels look like, never where they are written.
    private int _lastSubsampling;

    public JpegFrameDecoder()
    {
        _handle = TurboJpeg.tjInitDecompress();
        if (_handle.IsInvalid)
        {
            throw new MediaBackendException("tjInitDecompress failed");
        }
    }

    public unsafe bool TryReadHeader(ReadOnlySpan<byte> coded, out CodedFrameInfo info)
    {
        info = default;
        if (coded.Length < 4)
        {
            return false;
        }
        int width, height, subsampling, colorspace;
        // Safe: the pointer covers exactly coded.Length bytes for the call; TurboJPEG only reads them.
        fixed (byte* source = coded)
        {
            if (TurboJpeg.tjDecompressHeader3(_handle, source, (nuint)coded.Length, out width, out height, out subsampling, out colorspace) != 0)
            {
                return false;
            }
        }
        if (width <= 0 || height <= 0)
        {
            return false;
        }
        info = new CodedFrameInfo((uint)width, (uint)height);
        _lastSubsampling = subsampling;
        return true;
    }

    public bool Decode(ReadOnlySpan<byte> coded, in CodedFrameInfo info, ref CaptureFrame frame)
    {
        var format = (DecodedFormat)frame.Format;
        uint size = format.SizeImage(0, frame.Width, frame.Height);
        if (info.Width > frame.Width || info.Height > frame.Height || frame.Plane0.Length < size)
        {
            return false;
        }
        bool scattered = !frame.Plane0.IsContiguous;
        byte[]? rented = scattered ? ArrayPool<byte>.Shared.Rent((int)size) : null;
        try
        {
            Span<byte> target = scattered ? rented.AsSpan(0, (int)size) : frame.Plane0.Contiguous[..(int)size];
            bool ok = format.IsYuv
                ? DecodeYuv(coded, info, format.Layout, (int)frame.Width, (int)frame.Height, target)
                : DecodeRgb(coded, info, format, (int)frame.Width, target);
            if (ok && scattered)
            {
                frame.Plane0.Write(0, target);
            }
            return ok;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private unsafe bool DecodeRgb(ReadOnlySpan<byte> coded, in CodedFrameInfo info, DecodedFormat format, int width, Span<byte> target)
    {
        int pitch = (int)format.BytesPerLine(0, (uint)width);
        int pixelFormat = format.Layout == DecodedLayout.Rgb24 ? TurboJpeg.PixelFormatRgb : TurboJpeg.PixelFormatBgrx;
        // Safe: TurboJPEG writes at most info.Height rows of info.Width pixels at this pitch (it scales a larger
        // image down or fails), which target holds; it reads only coded.Length bytes.
        fixed (byte* source = coded)
        fixed (byte* destination = target)
        {
            return TurboJpeg.tjDecompress2(_handle, source, (nuint)coded.Length, destination, (int)info.Width, pitch,
                (int)info.Height, pixelFormat, TurboJpeg.FlagLimitScans) == 0;
        }
    }

    private bool DecodeYuv(ReadOnlySpan<byte> coded, in CodedFrameInfo info, DecodedLayout layout, int width, int height, Span<byte> target)
    {
        // Scratch planes of the buffer's full aligned size: whatever geometry TurboJPEG uses (at most the aligned
        // size, at a stride no larger than the width), its chroma writes stay inside them.
        byte[] scratch = ArrayPool<byte>.Shared.Rent(2 * width * height);
        try
        {
            return DecodeYuv(coded, info, layout, width, height, target, scratch.AsSpan(0, width * height), scratch.AsSpan(width * height, width * height));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private unsafe bool DecodeYuv(ReadOnlySpan<byte> coded, in CodedFrameInfo info, DecodedLayout layout, int width, int height,
        Span<byte> target, Span<byte> u, Span<byte> v)
    {
        int w = (int)info.Width, h = (int)info.Height;
        (int hf, int vf) = TurboJpeg.ChromaFactors(_lastSubsampling);
        int chromaWidth = hf == 0 ? 0 : (w + hf - 1) / hf, chromaHeight = vf == 0 ? 0 : (h + vf - 1) / vf;
        int* strides = stackalloc int[3] { width, Math.Max(chromaWidth, 1), Math.Max(chromaWidth, 1) };
        byte** planes = stackalloc byte*[3];
        int status;
        // Safe: luma goes to target's first width×height bytes (TurboJPEG's padded luma plane is at most the aligned
        // size), chroma to the scratch planes above; the source pointer covers coded.Length bytes.
        fixed (byte* source = coded)
        fixed (byte* y = target)
        fixed (byte* pu = u)
        fixed (byte* pv = v)
        {
            planes[0] = y;
            planes[1] = pu;
            planes[2] = pv;
            status = TurboJpeg.tjDecompressToYUVPlanes(_handle, source, (nuint)coded.Length, planes, w, strides, h, TurboJpeg.FlagLimitScans);
        }
        if (status != 0)
        {
            return false;
        }
        int lumaSize = width * height, halfWidth = width / 2, halfHeight = height / 2;
        Span<byte> chroma = target[lumaSize..];
        if (hf == 0)
        {
            chroma.Fill(128); // grayscale: neutral chroma
            return true;
        }
        // Resample the stream's chroma to 4:2:0 (nearest sample: 4:2:0 itself is a straight copy) and lay it out.
        int cw = (w + 1) / 2, ch = (h + 1) / 2;
        for (int row = 0; row < ch; row++)
        {
            int sy = Math.Min(chromaHeight - 1, row * 2 / vf);
            ReadOnlySpan<byte> su = u.Slice(sy * strides[1], chromaWidth), sv = v.Slice(sy * strides[2], chromaWidth);
            if (layout == DecodedLayout.Yu12)
            {
                Span<byte> du = chroma.Slice(row * halfWidth, cw), dv = chroma.Slice(halfWidth * halfHeight + row * halfWidth, cw);
                if (hf == 2)
                {
                    su[..cw].CopyTo(du);
                    sv[..cw].CopyTo(dv);
                    continue;
                }
                for (int x = 0; x < cw; x++)
                {
                    int sx = Math.Min(chromaWidth - 1, x * 2 / hf);
                    du[x] = su[sx];
                    dv[x] = sv[sx];
                }
            }
            else if (hf == 2)
            {
                Interleave(su[..cw], sv[..cw], chroma.Slice(row * width, 2 * cw));
            }
            else
            {
                Span<byte> uv = chroma.Slice(row * width, 2 * cw);
                for (int x = 0; x < cw; x++)
                {
                    int sx = Math.Min(chromaWidth - 1, x * 2 / hf);
                    uv[2 * x] = su[sx];
                    uv[2 * x + 1] = sv[sx];
                }
            }
        }
        return true;
    }

    /// <summary>Writes u0 v0 u1 v1 … (NV12's chroma row) from two planar rows of equal length: 16 pairs per step
    /// with 128-bit vectors where the CPU has them (each byte widened to 16 bits, V shifted into the high byte: a
    /// little-endian UV pair), the rest one pair at a time.</summary>
    internal static void Interleave(ReadOnlySpan<byte> u, ReadOnlySpan<byte> v, Span<byte> uv)
    {
        int n = Math.Min(u.Length, v.Length);
        uv = uv[..(2 * n)];
        int x = 0;
        if (Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            for (; x + 16 <= n; x += 16)
            {
                Vector128<byte> cu = Vector128.Create(u.Slice(x, 16)), cv = Vector128.Create(v.Slice(x, 16));
                (Vector128<ushort> uLow, Vector128<ushort> uHigh) = Vector128.Widen(cu);
                (Vector128<ushort> vLow, Vector128<ushort> vHigh) = Vector128.Widen(cv);
                (uLow | (vLow << 8)).AsByte().CopyTo(uv.Slice(2 * x, 16));
                (uHigh | (vHigh << 8)).AsByte().CopyTo(uv.Slice(2 * x + 16, 16));
            }
        }
        for (; x < n; x++)
        {
            uv[2 * x] = u[x];
            uv[2 * x + 1] = v[x];
        }
    }

    public void Dispose() => _handle.Dispose();
}
