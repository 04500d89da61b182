using Microsoft.Extensions.Logging;

namespace Vmm.Devices.VirtioMedia.Backends;

/// <summary>A backend's validated options, parsed from its <c>--media</c> spec: enough to build the device.</summary>
public interface IMediaBackendOptions
{
    /// <summary>Size of shared-memory region 0 (page multiple, ≤ 4 GiB), or 0 for none.</summary>
    ulong SharedMemorySize { get; }

    /// <summary>What a guest may hold of the device (sessions, buffers, pending events, command size).</summary>
    MediaDeviceLimits Limits { get; }

    /// <summary>Creates the backend. Throws <see cref="MediaBackendException"/> with a one-line reason when the
    /// backend cannot start (e.g. a host node that is missing, busy or not a capture device).</summary>
    /// <param name="logger">Where the backend logs (the device's logger).</param>
    IMediaBackend CreateBackend(ILogger logger);
}

/// <summary>A backend could not start; the message is one line for the user.</summary>
public sealed class MediaBackendException(string message) : Exception(message);
