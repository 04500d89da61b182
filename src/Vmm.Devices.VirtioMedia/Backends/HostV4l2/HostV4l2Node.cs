using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Interop;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.HostV4l2;

/// <summary>
/// One open() of a host V4L2 node, non-blocking (DQBUF and DQEVENT answer EAGAIN instead of waiting, so the device
/// thread never blocks in the host driver). The interop edge of the proxy: every ioctl goes through
/// <see cref="Ioctl{T}"/>, whose request value is computed from the C# struct's size (pinned against the kernel's
/// sizes by tests) and whose argument is a local the caller owns for the duration of the call.
/// </summary>
internal sealed unsafe partial class HostV4l2Node : IDisposable
{
    private const int O_RDWR = 2, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

    private HostV4l2Node(FileDescriptorHandle handle, string path)
    {
        Handle = handle;
        Path = path;
    }

    public FileDescriptorHandle Handle { get; }

    public string Path { get; }

    /// <summary>Opens <paramref name="path"/> read-write and non-blocking; returns 0 or open()'s errno.</summary>
    public static int TryOpen(string path, out HostV4l2Node? node)
    {
        node = null;
        int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
        {
            return Libc.LastErrno;
        }
        node = new HostV4l2Node(new FileDescriptorHandle(fd), path);
        return 0;
    }

    /// <summary>Issues <c>_IOC(direction, 'V', code, sizeof(T))</c> with <paramref name="arg"/>; returns 0 or the
    /// host driver's errno (EINTR is retried).</summary>
    public int Ioctl<T>(V4l2IoctlCode code, IoctlDirection direction, ref T arg) where T : unmanaged =>
        Ioctl(code, direction, MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref arg, 1)));

    /// <summary>Issues <c>_IOC(direction, 'V', code, payload.Length)</c> on a byte payload of exactly the struct's
    /// size (flat structures without pointers).</summary>
    public int Ioctl(V4l2IoctlCode code, IoctlDirection direction, Span<byte> payload)
    {
        uint request = V4l2Ioctl.Request(direction, code, payload.Length);
        bool added = false;
        Handle.DangerousAddRef(ref added);
        try
        {
            while (true)
            {
                // Safe: payload is pinned for the call and its length is the size encoded in the request, so the
                // host kernel touches only it.
                fixed (byte* p = payload)
                {
                    if (ioctl(Handle.Fd, request, p) == 0)
                    {
                        return 0;
                    }
                }
                int errno = Libc.LastErrno;
                if (errno != Libc.EINTR)
                {
                    return errno;
                }
            }
        }
        finally
        {
            Handle.DangerousRelease();
        }
    }

    /// <summary>The host's capabilities (QUERYCAP).</summary>
    public int QueryCapabilities(out V4l2Capability caps)
    {
        caps = default;
        return Ioctl(V4l2IoctlCode.QueryCap, IoctlDirection.Read, ref caps);
    }

    public void Dispose() => Handle.Dispose();

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int ioctl(int fd, nuint request, void* arg);
}
