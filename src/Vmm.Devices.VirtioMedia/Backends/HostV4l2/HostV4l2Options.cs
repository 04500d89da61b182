using Microsoft.Extensions.Logging;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Vmm.Devices.VirtioMedia.Backends.HostV4l2;

/// <summary>
/// A host V4L2 node handed to the guest: <c>--media /dev/videoN[,shm=SIZE][,stall=SECONDS][,hide=…][,max-…=N]</c>. <c>SIZE</c> is the
/// size of shared-memory region 0, the guest-physical window the host driver's MMAP buffers are mapped into (bytes,
/// or with a K/M/G suffix; page multiple up to 4 GiB, default 4 GiB: it is address space, not memory). <c>stall</c>:
/// a streaming session whose host device holds queued buffers and completes none for this long gets an ERROR event
/// (ETIMEDOUT); default 10, 0 turns the watchdog off. <c>hide=ID[+ID…]</c> (hex control ids such as 0x00980900):
/// host controls the guest must not see or use (a host-only switch, or a test driver's self-destruct button).
/// </summary>
public sealed record HostV4l2Options : IMediaBackendOptions
{
    /// <summary>Absolute path of the host node.</summary>
    public required string Path { get; init; }

    public ulong SharedMemorySize { get; init; } = 1UL << 32;

    /// <summary>No progress for this long while the host holds queued buffers fails the session; zero: never.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    public MediaDeviceLimits Limits { get; init; } = MediaDeviceLimits.Default;

    /// <summary>Host control ids hidden from the guest.</summary>
    public IReadOnlyList<uint> HiddenControls { get; init; } = [];

    /// <summary>Opens and checks the node (<see cref="HostV4l2Backend"/>); one-line
    /// <see cref="MediaBackendException"/> when it is missing, not V4L2, busy or cannot capture.</summary>
    public IMediaBackend CreateBackend(ILogger logger) => HostV4l2Backend.Open(this, logger);

    public static bool TryParse(string text, [NotNullWhen(true)] out HostV4l2Options? options, [NotNullWhen(false)] out string? error)
    {
        options = null;
        string[] parts = text.Split(',');
        string path = parts[0].Trim();
        if (!path.StartsWith('/') || path.Length < 2)
        {
            error = $"'{path}' is not an absolute path to a host V4L2 node such as /dev/video0";
            return false;
        }
        var result = new HostV4l2Options { Path = path };
        if (!MediaSpecOptions.TryParse(parts, out List<KeyValuePair<string, string>>? pairs, out error))
        {
            return false;
        }
        foreach ((string key, string value) in pairs)
        {
            switch (key)
            {
                case "stall":
                    if (!double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds) || seconds > 3600)
                    {
                        error = $"stall '{value}' must be a number of seconds from 0 (off) to 3600";
                        return false;
                    }
                    result = result with { StallTimeout = TimeSpan.FromSeconds(seconds) };
                    break;
                case "hide":
                {
                    var ids = new List<uint>();
                    foreach (string id in value.Split('+'))
                    {
                        string hex = id.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? id[2..] : id;
                        if (!uint.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint cid) || cid == 0)
                        {
                            error = $"hide '{value}' must be control ids in hex joined by '+', e.g. 0x00980900+0x00980901";
                            return false;
                        }
                        ids.Add(cid);
                    }
                    result = result with { HiddenControls = ids };
                    break;
                }
                default:
                    (ulong shm, MediaDeviceLimits limits) = (result.SharedMemorySize, result.Limits);
                    if (!MediaSpecOptions.TryApplyCommon(key, value, ref shm, ref limits, "stall, hide", out error))
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
