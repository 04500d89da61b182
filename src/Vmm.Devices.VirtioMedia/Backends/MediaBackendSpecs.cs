using System.Diagnostics.CodeAnalysis;
using Vmm.Devices.VirtioMedia.Backends.HostV4l2;
using Vmm.Devices.VirtioMedia.Backends.JpegDecoder;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;

namespace Vmm.Devices.VirtioMedia.Backends;

/// <summary>
/// The backends a <c>--media</c> spec can name; each parses its own options. A spec starting with <c>/</c> is a host
/// V4L2 node (<see cref="HostV4l2Options"/>), anything else names a backend by its first word: <c>test-pattern</c>
/// (a camera) or <c>jpeg-decoder</c> (a memory-to-memory decoder).
/// </summary>
public static class MediaBackendSpecs
{
    /// <summary>The spec used when none is given.</summary>
    public const string Default = TestPatternOptions.Name;

    public static bool TryParse(string spec, [NotNullWhen(true)] out IMediaBackendOptions? options, [NotNullWhen(false)] out string? error)
    {
        options = null;
        string trimmed = spec.Trim();
        if (trimmed.StartsWith('/'))
        {
            bool ok = HostV4l2Options.TryParse(trimmed, out HostV4l2Options? host, out error);
            options = host;
            return ok;
        }
        string name = trimmed.Split(',')[0].Trim();
        if (name == TestPatternOptions.Name)
        {
            bool ok = TestPatternOptions.TryParse(trimmed, out TestPatternOptions? pattern, out error);
            options = pattern;
            return ok;
        }
        if (name == JpegDecoderOptions.Name)
        {
            bool ok = JpegDecoderOptions.TryParse(trimmed, out JpegDecoderOptions? decoder, out error);
            options = decoder;
            return ok;
        }
        error = $"unknown media backend '{name}' (expected '{TestPatternOptions.Name}[,…]', '{JpegDecoderOptions.Name}[,…]' or a host node such as /dev/video0)";
        return false;
    }
}
