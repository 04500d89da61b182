using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Logging;

namespace Vmm.Devices.VirtioMedia.Backends.JpegDecoder;

/// <summary>
/// Configuration of the built-in JPEG decoder, parsed from <c>--media jpeg-decoder[,card=NAME,shm=SIZE,…]</c> (plus
/// the <see cref="MediaDeviceLimits"/> keys).
/// </summary>
public sealed record JpegDecoderOptions : IMediaBackendOptions
{
    /// <summary>The spec's first word.</summary>
    public const string Name = "jpeg-decoder";

    /// <summary>Name reported as the card (config space, max 31 bytes).</summary>
    public string Card { get; init; } = "Vmm JPEG decoder";

    /// <summary>Size of shared-memory region 0 for the MMAP buffers of both queues of every session.</summary>
    public ulong SharedMemorySize { get; init; } = 1UL << 32;

    public MediaDeviceLimits Limits { get; init; } = MediaDeviceLimits.Default;

    public IMediaBackend CreateBackend(ILogger logger) => new JpegDecoderBackend(this);

    /// <summary>Parses the spec; on failure <paramref name="error"/> is one line naming the problem.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out JpegDecoderOptions? options, [NotNullWhen(false)] out string? error)
    {
        options = null;
        string[] parts = text.Split(',');
        if (parts[0].Trim() != Name)
        {
            error = $"unknown media backend '{parts[0].Trim()}' (expected '{Name}')";
            return false;
        }
        if (!MediaSpecOptions.TryParse(parts, out List<KeyValuePair<string, string>>? pairs, out error))
        {
            return false;
        }
        var result = new JpegDecoderOptions();
        foreach ((string key, string value) in pairs)
        {
            switch (key)
            {
                case "card":
                    if (!MediaSpecOptions.TryParseCard(value, out string? card, out error))
                    {
                        return false;
                    }
                    result = result with { Card = card };
                    break;
                default:
                    (ulong shm, MediaDeviceLimits limits) = (result.SharedMemorySize, result.Limits);
                    if (!MediaSpecOptions.TryApplyCommon(key, value, ref shm, ref limits, "card", out error))
                    {
                        return false;
                    }
                    result = result with { SharedMemorySize = shm, Limits = limits };
                    break;
            }
        }
        options = result;
        error = null;
        return true;
    }
}
