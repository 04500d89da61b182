using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Vmm.Devices.VirtioMedia.Backends;

/// <summary>The <c>key=value</c> list after the first word of a <c>--media</c> spec, shared by the backends' parsers:
/// keys are lower-cased, each may appear once.</summary>
public static class MediaSpecOptions
{
    /// <summary>Splits <paramref name="parts"/> from index 1 on; false with a one-line error on a malformed or
    /// repeated key.</summary>
    public static bool TryParse(string[] parts, [NotNullWhen(true)] out List<KeyValuePair<string, string>>? pairs,
        [NotNullWhen(false)] out string? error)
    {
        pairs = [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 1; i < parts.Length; i++)
        {
            string part = parts[i].Trim();
            int eq = part.IndexOf('=');
            if (eq <= 0)
            {
                error = $"expected key=value, got '{part}'";
                pairs = null;
                return false;
            }
            string key = part[..eq].Trim().ToLowerInvariant();
            if (!seen.Add(key))
            {
                error = $"'{key}' given twice";
                pairs = null;
                return false;
            }
            pairs.Add(new(key, part[(eq + 1)..].Trim()));
        }
        error = null;
        return true;
    }

    /// <summary>The keys every backend takes: <c>shm=</c> (<paramref name="sharedMemorySize"/>) and the
    /// <see cref="MediaDeviceLimits"/> keys (<paramref name="limits"/>). Any other key is an error that lists
    /// <paramref name="backendKeys"/> (the backend's own) and these.</summary>
    public static bool TryApplyCommon(string key, string value, ref ulong sharedMemorySize, ref MediaDeviceLimits limits,
        string backendKeys, [NotNullWhen(false)] out string? error)
    {
        if (key == "shm")
        {
            return TryParseShm(value, out sharedMemorySize, out error);
        }
        return MediaDeviceLimits.TryApply(key, value, ref limits, $"unknown key '{key}' (known: {backendKeys}, shm, {MediaDeviceLimits.Keys})", out error);
    }

    /// <summary>A <c>card=</c> value: the name the device reports, 1 to 31 characters (the config space holds 32 bytes).</summary>
    public static bool TryParseCard(string value, [NotNullWhen(true)] out string? card, [NotNullWhen(false)] out string? error)
    {
        if (value.Length == 0 || value.Length > 31)
        {
            card = null;
            error = "card name must be 1 to 31 characters";
            return false;
        }
        card = value;
        error = null;
        return true;
    }

    /// <summary>An <c>shm=</c> value: the size of shared-memory region 0, a non-zero page multiple up to 4 GiB.</summary>
    public static bool TryParseShm(string value, out ulong size, [NotNullWhen(false)] out string? error)
    {
        if (!TryParseSize(value, out size) || size == 0 || (size & 0xFFF) != 0 || size > 1UL << 32)
        {
            error = $"shm '{value}' must be a non-zero multiple of 4K up to 4G (e.g. 512M)";
            return false;
        }
        error = null;
        return true;
    }

    /// <summary>Bytes, or with a K/M/G suffix (powers of 1024); at most 1 TiB.</summary>
    public static bool TryParseSize(string text, out ulong bytes)
    {
        bytes = 0;
        ulong scale = 1;
        if (text.Length > 0)
        {
            switch (char.ToUpperInvariant(text[^1]))
            {
                case 'K': scale = 1UL << 10; break;
                case 'M': scale = 1UL << 20; break;
                case 'G': scale = 1UL << 30; break;
            }
            if (scale != 1)
            {
                text = text[..^1];
            }
        }
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n) || n > (1UL << 40) / scale)
        {
            return false;
        }
        bytes = n * scale;
        return true;
    }
}
