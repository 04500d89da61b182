using Microsoft.Extensions.Logging;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// Everything the virtio-media device and its backends write to the VMM's log, through the
/// <see cref="ILogger"/> the host application hands the device (none: <c>NullLogger</c>). Source-generated, so a
/// message whose level is off costs one check and allocates nothing. The device never writes to the console itself:
/// stdout belongs to the guest, and an embedding application decides where lines go.
/// </summary>
internal static partial class MediaLog
{
    [LoggerMessage(Level = LogLevel.Error, Message = "{Reason}")]
    public static partial void DeviceFailed(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "virtio-media: ioctl {Code} of session {Session} failed in the backend: {ExceptionType}: {ExceptionMessage}")]
    public static partial void BackendIoctlFailed(ILogger logger, uint code, uint session, string exceptionType, string exceptionMessage);

    [LoggerMessage(Level = LogLevel.Information, Message = "virtio-media host proxy {Path}: {Frames} frames delivered, {BytesCopied} bytes copied ({PerFrame:F0} per frame)")]
    public static partial void HostProxyTotals(ILogger logger, string path, long frames, long bytesCopied, double perFrame);

    [LoggerMessage(Level = LogLevel.Warning, Message = "virtio-media host proxy: copying frames ({Reason}); counted in bytes copied")]
    public static partial void HostProxyCopying(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "virtio-media host proxy {Path}: session {Session}: VIDIOC {Code} -> errno {Errno}")]
    public static partial void HostIoctlFailed(ILogger logger, string path, uint session, V4l2IoctlCode code, int errno);

    [LoggerMessage(Level = LogLevel.Error, Message = "virtio-media host proxy {Path}: session {Session} fails with errno {Errno}: {Reason}")]
    public static partial void HostSessionFailed(ILogger logger, string path, uint session, int errno, string reason);
}
