using System.Diagnostics.CodeAnalysis;
using System.Globalization;

using Vmm.Devices.VirtioMedia.Device;

namespace Vmm.Devices.VirtioMedia.Backends;

/// <summary>
/// What one guest may hold of a virtio-media device, whatever the backend. Each is a <c>--media</c> key, and each has
/// one exact answer when the guest reaches it:
/// <list type="bullet">
/// <item><c>max-sessions</c> open sessions: the next OPEN is EMFILE;</item>
/// <item><c>max-buffers</c> per queue: REQBUFS grants at most this many (V4L2 lets a driver grant fewer), and
/// CREATE_BUFS on a full queue is ENOBUFS;</item>
/// <item><c>max-events</c> pending events while the guest posts no eventq buffers: the oldest V4L2 event is dropped;
/// a DQBUF that finds no room fails its session with an ERROR event (EIO);</item>
/// <item><c>max-command</c> bytes of one command's request: a longer one is E2BIG, and no response is longer.</item>
/// </list>
/// The shared-memory size (<c>shm=</c>, <see cref="MediaSpecOptions.TryParseShm"/>) bounds MMAP buffers: REQBUFS
/// grants as many as fit and is ENOMEM when not one does.
/// </summary>
public sealed record MediaDeviceLimits
{
    public static MediaDeviceLimits Default { get; } = new();

    /// <summary>Sessions open at once (guest open() calls of the node). V4L2 devices allow many opens, and
    /// v4l2-compliance checks it with 100 at once (64 failed its "unlimited opens" test with the upstream driver). A
    /// session holds a few hundred bytes until it allocates buffers, which the shared-memory size bounds.</summary>
    public int MaxSessions { get; init; } = 256;

    /// <summary>Buffers per queue; V4L2's own ceiling is VIDEO_MAX_FRAME (32).</summary>
    public int MaxBuffersPerQueue { get; init; } = 32;

    /// <summary>Events waiting for eventq buffers (at most 4 MiB of them whatever the count).</summary>
    public int MaxPendingEvents { get; init; } = PendingEvents.DefaultMaxEvents;

    /// <summary>Bytes of one command's request or response.</summary>
    public int MaxCommandBytes { get; init; } = 64 * 1024;

    public const int SessionsCeiling = 4096, BuffersCeiling = 32, EventsFloor = 16, EventsCeiling = 1 << 20;
    public const int CommandBytesFloor = 4096, CommandBytesCeiling = 16 << 20;

    /// <summary>The keys <see cref="TryApply"/> knows, for a backend's "known keys" message.</summary>
    public const string Keys = "max-sessions, max-buffers, max-events, max-command";

    /// <summary>Applies one <c>key=value</c> of a <c>--media</c> spec. False with a one-line <paramref name="error"/>
    /// when the value is bad, or when the key is no limit: then the error is <paramref name="unknownKeyError"/>.</summary>
    public static bool TryApply(string key, string value, ref MediaDeviceLimits limits, string unknownKeyError,
        [NotNullWhen(false)] out string? error)
    {
        error = null;
        switch (key)
        {
            case "max-sessions":
                if (TryRange(key, value, 1, SessionsCeiling, out int sessions, out error))
                {
                    limits = limits with { MaxSessions = sessions };
                }
                break;
            case "max-buffers":
                if (TryRange(key, value, 1, BuffersCeiling, out int buffers, out error))
                {
                    limits = limits with { MaxBuffersPerQueue = buffers };
                }
                break;
            case "max-events":
                if (TryRange(key, value, EventsFloor, EventsCeiling, out int events, out error))
                {
                    limits = limits with { MaxPendingEvents = events };
                }
                break;
            case "max-command":
                if (!MediaSpecOptions.TryParseSize(value, out ulong bytes) || bytes < CommandBytesFloor || bytes > CommandBytesCeiling)
                {
                    error = $"max-command '{value}' must be a byte count from 4K to 16M";
                }
                else
                {
                    limits = limits with { MaxCommandBytes = (int)bytes };
                }
                break;
            default:
                error = unknownKeyError;
                break;
        }
        return error is null;
    }

    private static bool TryRange(string key, string value, int min, int max, out int result, [NotNullWhen(false)] out string? error)
    {
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result) && result >= min && result <= max)
        {
            error = null;
            return true;
        }
        error = $"{key} '{value}' must be a whole number from {min} to {max}";
        return false;
    }
}
