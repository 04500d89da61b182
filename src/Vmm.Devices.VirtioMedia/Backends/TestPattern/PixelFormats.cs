using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>One supported pixel format and how its bytes are laid out.</summary>
/// <param name="FourCc">The V4L2 pixel format.</param>
/// <param name="Description">Text for ENUM_FMT.</param>
/// <param name="MemoryPlanes">Number of separately allocated memory planes (1 for contiguous formats).</param>
/// <param name="IsYuv">YCbCr (BT.601 limited range) rather than RGB.</param>
/// <param name="MultiPlanarOnly">Only offered on the multi-planar API (formats with more than one memory plane).</param>
public sealed record PixelFormatInfo(uint FourCc, string Description, int MemoryPlanes, bool IsYuv, bool MultiPlanarOnly)
    : CaptureFormat(FourCc, Description, MemoryPlanes, MultiPlanarOnly)
{
    /// <summary>Bytes per line of memory plane <paramref name="plane"/> for a <paramref name="width"/>-pixel row.</summary>
    public override uint BytesPerLine(int plane, uint width) => FourCc switch
    {
        V4l2.FourCc.Yuyv => 2 * width,
        V4l2.FourCc.Rgb24 or V4l2.FourCc.Bgr24 => 3 * width,
        V4l2.FourCc.Yu12M => plane == 0 ? width : width / 2,
        _ => width, // NV12, YU12 (chroma strides derive from the luma one), NM12 (both planes are width bytes)
    };

    /// <summary>Size in bytes of memory plane <paramref name="plane"/>.</summary>
    public override uint SizeImage(int plane, uint width, uint height) => FourCc switch
    {
        V4l2.FourCc.Yuyv => 2 * width * height,
        V4l2.FourCc.Rgb24 or V4l2.FourCc.Bgr24 => 3 * width * height,
        V4l2.FourCc.Nv12 or V4l2.FourCc.Yu12 => width * height * 3 / 2,
        V4l2.FourCc.Nv12M => plane == 0 ? width * height : width * height / 2,
        V4l2.FourCc.Yu12M => plane == 0 ? width * height : width * height / 4,
        _ => 0,
    };

    /// <summary>Sum of all memory planes.</summary>
    public uint FrameSize(uint width, uint height)
    {
        uint total = 0;
        for (int p = 0; p < MemoryPlanes; p++)
        {
            total += SizeImage(p, width, height);
        }
        return total;
    }

    /// <summary>The V4L2 colorspace reported for this format.</summary>
    public override uint Colorspace => IsYuv ? V4l2Const.ColorspaceSmpte170m : V4l2Const.ColorspaceSrgb;
}

/// <summary>The formats, frame sizes and frame rates the test-pattern camera offers.</summary>
public static class PixelFormats
{
    /// <summary>In ENUM_FMT order. The first five are offered on both APIs, the last two on the multi-planar one.</summary>
    public static readonly PixelFormatInfo[] All =
    [
        new(FourCc.Yuyv, "YUYV 4:2:2", 1, true, false),
        new(FourCc.Nv12, "Y/UV 4:2:0", 1, true, false),
        new(FourCc.Yu12, "Planar YUV 4:2:0", 1, true, false),
        new(FourCc.Rgb24, "24-bit RGB 8-8-8", 1, false, false),
        new(FourCc.Bgr24, "24-bit BGR 8-8-8", 1, false, false),
        new(FourCc.Nv12M, "Y/UV 4:2:0 (N-C)", 2, true, true),
        new(FourCc.Yu12M, "Planar YUV 4:2:0 (N-C)", 3, true, true),
    ];

    /// <summary>Common discrete frame sizes (all even, 160×120 … 3840×2160).</summary>
    public static readonly (uint Width, uint Height)[] CommonSizes =
    [
        (160, 120), (176, 144), (320, 240), (352, 288), (640, 360), (640, 480), (800, 600), (1024, 768),
        (1280, 720), (1280, 960), (1920, 1080), (2560, 1440), (3840, 2160),
    ];

    /// <summary>Common frame rates (frames per second); intervals are 1/fps.</summary>
    public static readonly uint[] CommonRates = [1, 5, 10, 15, 24, 25, 30, 50, 60, 120];

    public const uint MinWidth = 160, MinHeight = 120, MaxWidth = 3840, MaxHeight = 2160, MinFps = 1, MaxFps = 120;

    /// <summary>The format with <paramref name="fourcc"/>, or null.</summary>
    public static PixelFormatInfo? Find(uint fourcc)
    {
        foreach (PixelFormatInfo f in All)
        {
            if (f.FourCc == fourcc)
            {
                return f;
            }
        }
        return null;
    }
}
