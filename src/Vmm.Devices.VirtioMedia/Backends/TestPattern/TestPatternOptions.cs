using Microsoft.Extensions.Logging;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>
/// Configuration of the test-pattern camera: the initial (and always enumerated) frame size, rate and format, plus
/// the device-level settings. Parsed from the CLI option <c>--media test-pattern[,width=W,height=H,fps=F,format=FOURCC]</c>
/// by <see cref="TryParse"/>.
/// </summary>
public sealed record TestPatternOptions : IMediaBackendOptions
{
    /// <summary>The spec's first word.</summary>
    public const string Name = "test-pattern";

    public IMediaBackend CreateBackend(ILogger logger) => new TestPatternBackend(this);

    /// <summary>Initial width in pixels (even, 160…3840).</summary>
    public uint Width { get; init; } = 640;

    /// <summary>Initial height in pixels (even, 120…2160).</summary>
    public uint Height { get; init; } = 480;

    /// <summary>Initial frame rate (1…120).</summary>
    public uint Fps { get; init; } = 30;

    /// <summary>Initial pixel format (one of <see cref="PixelFormats.All"/>).</summary>
    public uint Format { get; init; } = FourCc.Yuyv;

    /// <summary>Name reported as the card (config space, max 31 bytes).</summary>
    public string Card { get; init; } = "Vmm test pattern";

    /// <summary>Size of shared-memory region 0 for MMAP buffers (page multiple, ≤ 4 GiB; sparse memfd).</summary>
    public ulong SharedMemorySize { get; init; } = 1UL << 32;

    public MediaDeviceLimits Limits { get; init; } = MediaDeviceLimits.Default;

    /// <summary>Offer the multi-planar API (true) or the single-planar one (false); null: multi-planar only when
    /// <see cref="Format"/> needs it. A V4L2 device offers one of the two, never both (the kernel's ENUM_FMT and
    /// v4l2-compliance reject a node with both capabilities).</summary>
    public bool? MultiPlanar { get; init; }

    /// <summary>The API actually offered: <see cref="MultiPlanar"/>, or derived from the initial format.</summary>
    public bool UsesMultiPlanarApi => MultiPlanar ?? PixelFormats.Find(Format) is { MultiPlanarOnly: true };

    /// <summary>Deliver frames at the frame interval (true, the camera behaviour) or as soon as a buffer is queued
    /// (false: for benchmarks measuring the per-frame cost).</summary>
    public bool Paced { get; init; } = true;

    /// <summary>Render each MMAP buffer once, at its first fill, and deliver that image unchanged afterwards
    /// (<c>pattern=static</c>): frames then cost the transport only, which is what the performance lab's transport
    /// suite measures. The default (<c>pattern=moving</c>) renders every frame, counter and moving box included.</summary>
    public bool StaticImage { get; init; }

    /// <summary>Test seam: runs on the frame clock's thread after a buffer is taken for filling and before any pixel
    /// is written, so a test can put commands in the middle of a fill deterministically.</summary>
    internal Action? FillStarting { get; init; }

    /// <summary>Test seam: runs on the frame clock's thread once a fill has written its last pixel.</summary>
    internal Action? FillEnded { get; init; }

    /// <summary>Checks the values; null when valid, otherwise a one-line error.</summary>
    public string? Validate()
    {
        if (Width < PixelFormats.MinWidth || Width > PixelFormats.MaxWidth || (Width & 1) != 0)
        {
            return $"width {Width} must be even and between {PixelFormats.MinWidth} and {PixelFormats.MaxWidth}";
        }
        if (Height < PixelFormats.MinHeight || Height > PixelFormats.MaxHeight || (Height & 1) != 0)
        {
            return $"height {Height} must be even and between {PixelFormats.MinHeight} and {PixelFormats.MaxHeight}";
        }
        if (Fps < PixelFormats.MinFps || Fps > PixelFormats.MaxFps)
        {
            return $"fps {Fps} must be between {PixelFormats.MinFps} and {PixelFormats.MaxFps}";
        }
        if (PixelFormats.Find(Format) is null)
        {
            return $"format '{FourCc.ToString(Format)}' is not supported (use {SupportedFormatList()})";
        }
        if (MultiPlanar == false && PixelFormats.Find(Format) is { MultiPlanarOnly: true })
        {
            return $"format '{FourCc.ToString(Format)}' needs api=mplane";
        }
        if (SharedMemorySize == 0 || (SharedMemorySize & 0xFFF) != 0 || SharedMemorySize > 1UL << 32)
        {
            return $"shared memory size 0x{SharedMemorySize:x} must be a non-zero multiple of 4096 up to 4 GiB";
        }
        return null;
    }

    /// <summary>
    /// Parses <c>test-pattern[,width=W,height=H,fps=F,format=FOURCC]</c> (keys in any order, each at most once;
    /// also <c>size=WxH</c>, <c>api=single|mplane</c>, <c>card=NAME</c>, <c>shm=SIZE</c>, <c>pattern=moving|static</c> and the
    /// <see cref="MediaDeviceLimits"/> keys). On failure <paramref name="error"/> is one line naming the problem.
    /// </summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out TestPatternOptions? options, [NotNullWhen(false)] out string? error)
    {
        options = null;
        string[] parts = text.Split(',');
        if (parts[0].Trim() != Name)
        {
            error = $"unknown media backend '{parts[0].Trim()}' (expected 'test-pattern')";
            return false;
        }
        var result = new TestPatternOptions();
        if (!MediaSpecOptions.TryParse(parts, out List<KeyValuePair<string, string>>? pairs, out error))
        {
            return false;
        }
        foreach ((string key, string value) in pairs)
        {
            switch (key)
            {
                case "width":
                    if (!TryParseUInt(key, value, out uint w, out error)) { return false; }
                    result = result with { Width = w };
                    break;
                case "height":
                    if (!TryParseUInt(key, value, out uint h, out error)) { return false; }
                    result = result with { Height = h };
                    break;
                case "size":
                {
                    int x = value.IndexOfAny(['x', 'X']);
                    if (x <= 0 || !TryParseUInt(key, value[..x], out uint sw, out error) || !TryParseUInt(key, value[(x + 1)..], out uint sh, out error))
                    {
                        error = $"size '{value}' must look like 1280x720";
                        return false;
                    }
                    result = result with { Width = sw, Height = sh };
                    break;
                }
                case "fps":
                    if (!TryParseUInt(key, value, out uint fps, out error)) { return false; }
                    result = result with { Fps = fps };
                    break;
                case "format":
                {
                    uint fourcc = AliasToFourCc(value);
                    if (fourcc == 0 && !FourCc.TryParse(value, out fourcc))
                    {
                        error = $"format '{value}' is not a fourcc (use {SupportedFormatList()})";
                        return false;
                    }
                    result = result with { Format = fourcc };
                    break;
                }
                case "api":
                    if (value is not ("single" or "mplane"))
                    {
                        error = $"api '{value}' must be 'single' or 'mplane'";
                        return false;
                    }
                    result = result with { MultiPlanar = value == "mplane" };
                    break;
                case "card":
                    if (!MediaSpecOptions.TryParseCard(value, out string? card, out error))
                    {
                        return false;
                    }
                    result = result with { Card = card };
                    break;
                case "pattern":
                    if (value is not ("moving" or "static"))
                    {
                        error = $"pattern '{value}' must be 'moving' or 'static'";
                        return false;
                    }
                    result = result with { StaticImage = value == "static" };
                    break;
                default:
                    (ulong shm, MediaDeviceLimits limits) = (result.SharedMemorySize, result.Limits);
                    if (!MediaSpecOptions.TryApplyCommon(key, value, ref shm, ref limits, "width, height, size, fps, format, api, card, pattern", out error))
                    {
                        return false;
                    }
                    result = result with { SharedMemorySize = shm, Limits = limits };
                    break;
            }
        }
        error = result.Validate();
        if (error is not null)
        {
            return false;
        }
        options = result;
        return true;
    }

    private static uint AliasToFourCc(string value) => value.ToUpperInvariant() switch
    {
        "YUYV" => FourCc.Yuyv,
        "NV12" => FourCc.Nv12,
        "YU12" or "I420" or "YUV420" => FourCc.Yu12,
        "NM12" or "NV12M" => FourCc.Nv12M,
        "YM12" or "YUV420M" => FourCc.Yu12M,
        "RGB3" or "RGB24" => FourCc.Rgb24,
        "BGR3" or "BGR24" => FourCc.Bgr24,
        _ => 0,
    };

    private static string SupportedFormatList() => "YUYV, NV12, YU12, NM12, YM12, RGB3, BGR3";

    private static bool TryParseUInt(string key, string value, out uint result, [NotNullWhen(false)] out string? error)
    {
        if (uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result))
        {
            error = null;
            return true;
        }
        error = $"{key} '{value}' is not a non-negative integer";
        return false;
    }
}
