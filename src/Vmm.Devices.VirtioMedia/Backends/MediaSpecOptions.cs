using System.Diagnostics.CodeAnalysis;

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
}
