using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// The parts of format negotiation every raw-frame device shares: ENUM_FMT over a format list, G/S/TRY_FMT answers
/// for the single- and multi-planar APIs, discrete ENUM_FRAMESIZES/FRAMEINTERVALS, and the G/S_PARM frame rate.
/// Each answer starts from a cleared structure; the <see cref="Ioctls.IoctlDispatcher"/> puts the identity fields
/// the guest sent (index, type, pixel format, size) back, so they are not repeated here.
/// </summary>
public static class V4l2Formats
{
    /// <summary>True for the buffer types whose buffers carry a plane array.</summary>
    public static bool IsMultiPlanar(uint type) =>
        type is (uint)V4l2BufferType.VideoCaptureMplane or (uint)V4l2BufferType.VideoOutputMplane;

    /// <summary>The format with <paramref name="fourcc"/> that the API of <paramref name="type"/> offers (formats
    /// with several memory planes exist on the multi-planar API only), or null.</summary>
    public static CaptureFormat? FindOffered(IReadOnlyList<CaptureFormat> formats, uint fourcc, uint type)
    {
        for (int i = 0; i < formats.Count; i++)
        {
            CaptureFormat f = formats[i];
            if (f.FourCc == fourcc)
            {
                return !f.MultiPlanarOnly || IsMultiPlanar(type) ? f : null;
            }
        }
        return null;
    }

    /// <summary>ENUM_FMT: the <c>index</c>-th format the API of <c>type</c> offers.</summary>
    public static int Enumerate(ref V4l2FmtDesc desc, IReadOnlyList<CaptureFormat> formats)
    {
        bool mplane = IsMultiPlanar(desc.Type);
        uint n = 0;
        for (int i = 0; i < formats.Count; i++)
        {
            CaptureFormat f = formats[i];
            if (f.MultiPlanarOnly && !mplane)
            {
                continue;
            }
            if (n++ == desc.Index)
            {
                desc = default;
                desc.PixelFormat = f.FourCc;
                unsafe
                {
                    // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
                    V4l2Text.Write(ref desc.Description[0], f.Description);
                }
                return 0;
            }
        }
        return Errno.EINVAL;
    }

    /// <summary>The pixel format and size a G/S/TRY_FMT request asks for, from the view its type selects.</summary>
    public static (uint FourCc, uint Width, uint Height) Requested(in V4l2Format request) => IsMultiPlanar(request.Type)
        ? (request.PixMp.PixelFormat, request.PixMp.Width, request.PixMp.Height)
        : (request.Pix.PixelFormat, request.Pix.Width, request.Pix.Height);

    /// <summary>Answers a G/S/TRY_FMT with <paramref name="f"/> at <paramref name="width"/>×<paramref name="height"/>,
    /// progressive, in the view of the request's type.</summary>
    public static void Describe(ref V4l2Format format, CaptureFormat f, uint width, uint height)
    {
        bool mplane = IsMultiPlanar(format.Type);
        format = default;
        if (mplane)
        {
            ref V4l2PixFormatMplane mp = ref format.PixMp;
            mp.Width = width;
            mp.Height = height;
            mp.PixelFormat = f.FourCc;
            mp.Field = V4l2Const.FieldNone;
            mp.Colorspace = f.Colorspace;
            mp.YcbcrEnc = (byte)f.YcbcrEncoding;
            mp.Quantization = (byte)f.Quantization;
            mp.NumPlanes = (byte)f.MemoryPlanes;
            for (int p = 0; p < f.MemoryPlanes; p++)
            {
                mp.PlaneFmt(p).BytesPerLine = f.BytesPerLine(p, width);
                mp.PlaneFmt(p).SizeImage = f.SizeImage(p, width, height);
            }
        }
        else
        {
            ref V4l2PixFormat pix = ref format.Pix;
            pix.Width = width;
            pix.Height = height;
            pix.PixelFormat = f.FourCc;
            pix.Field = V4l2Const.FieldNone;
            pix.BytesPerLine = f.BytesPerLine(0, width);
            pix.SizeImage = f.SizeImage(0, width, height);
            pix.Colorspace = f.Colorspace;
            pix.YcbcrEnc = f.YcbcrEncoding;
            pix.Quantization = f.Quantization;
        }
    }

    /// <summary>Writes each memory plane's size of <paramref name="f"/> into <paramref name="sizes"/> and returns
    /// the used part (the buffer queue's plane sizes).</summary>
    public static Span<uint> PlaneSizes(CaptureFormat f, uint width, uint height, Span<uint> sizes)
    {
        for (int p = 0; p < f.MemoryPlanes; p++)
        {
            sizes[p] = f.SizeImage(p, width, height);
        }
        return sizes[..f.MemoryPlanes];
    }

    /// <summary>ENUM_FRAMESIZES: the <c>index</c>-th of a discrete size list.</summary>
    public static int EnumerateSize(ref V4l2FrmSizeEnum sizes, ReadOnlySpan<(uint Width, uint Height)> discrete)
    {
        if (sizes.Index >= discrete.Length)
        {
            return Errno.EINVAL;
        }
        (uint w, uint h) = discrete[(int)sizes.Index];
        sizes = default;
        sizes.Type = V4l2Const.FrmSizeTypeDiscrete;
        sizes.Width = w;
        sizes.Height = h;
        return 0;
    }

    /// <summary>ENUM_FRAMEINTERVALS over a rate list in ascending frames per second: the fastest rate (shortest
    /// interval) comes first.</summary>
    public static int EnumerateInterval(ref V4l2FrmIvalEnum intervals, ReadOnlySpan<uint> ratesAscending)
    {
        if (intervals.Index >= ratesAscending.Length)
        {
            return Errno.EINVAL;
        }
        uint fps = ratesAscending[ratesAscending.Length - 1 - (int)intervals.Index];
        intervals = default;
        intervals.Type = V4l2Const.FrmIvalTypeDiscrete;
        intervals.Discrete = new V4l2Fract(1, fps);
        return 0;
    }

    /// <summary>G_PARM (and the answer of S_PARM): a capture device with a settable time per frame of 1/fps.</summary>
    public static void DescribeRate(ref V4l2StreamParm parm, uint fps)
    {
        parm = default;
        parm.Capability = V4l2Const.CapTimePerFrame;
        parm.TimePerFrame = new V4l2Fract(1, fps);
    }

    /// <summary>The frame rate an S_PARM time per frame asks for, rounded; false when it asks for none (a zero
    /// numerator or denominator keeps the current rate).</summary>
    public static bool RequestedRate(V4l2Fract timePerFrame, out uint fps)
    {
        if (timePerFrame.Numerator == 0 || timePerFrame.Denominator == 0)
        {
            fps = 0;
            return false;
        }
        fps = (uint)Math.Clamp((timePerFrame.Denominator + timePerFrame.Numerator / 2) / timePerFrame.Numerator, 1, uint.MaxValue);
        return true;
    }

    /// <summary>True when <paramref name="discrete"/> holds <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static bool Contains(ReadOnlySpan<(uint Width, uint Height)> discrete, uint width, uint height)
    {
        foreach ((uint w, uint h) in discrete)
        {
            if (w == width && h == height)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The size of <paramref name="discrete"/> nearest to the request (by sum of absolute differences).</summary>
    public static (uint Width, uint Height) NearestSize(ReadOnlySpan<(uint Width, uint Height)> discrete, uint width, uint height)
    {
        (uint, uint) best = discrete[0];
        long bestDistance = long.MaxValue;
        foreach ((uint w, uint h) in discrete)
        {
            long d = Math.Abs((long)w - width) + Math.Abs((long)h - height);
            if (d < bestDistance)
            {
                bestDistance = d;
                best = (w, h);
            }
        }
        return best;
    }

    /// <summary>The rate of <paramref name="rates"/> nearest to <paramref name="fps"/> (the first on a tie).</summary>
    public static uint NearestRate(ReadOnlySpan<uint> rates, uint fps)
    {
        uint best = rates[0];
        foreach (uint r in rates)
        {
            if (Math.Abs((long)r - fps) < Math.Abs((long)best - fps))
            {
                best = r;
            }
        }
        return best;
    }
}
