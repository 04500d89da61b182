using Vmm.Core.Interop;

namespace Vmm.Core.Events;

/// <summary>
/// A Linux eventfd (non-blocking, close-on-exec): the doorbell between threads and between KVM and the VMM —
/// KVM signals one on a queue notify (ioeventfd) and raises an interrupt when one is signalled (irqfd).
/// </summary>
public sealed unsafe class EventFd : IDisposable
{
    private readonly FileDescriptorHandle _handle;

    public EventFd(uint initialValue = 0)
    {
        int fd = Libc.eventfd(initialValue, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);
        if (fd < 0)
        {
            throw ErrnoException.FromLastError("eventfd");
        }
        _handle = new FileDescriptorHandle(fd);
    }

    public FileDescriptorHandle Handle => _handle;

    /// <summary>Adds <paramref name="value"/> to the counter, waking any waiter.</summary>
    public void Signal(ulong value = 1)
    {
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try
        {
            // Safe: writes 8 bytes from a local; the fd is kept alive by the AddRef above.
            nint n = Libc.write(_handle.Fd, &value, 8);
            if (n != 8 && Libc.LastErrno != Libc.EAGAIN)
            {
                throw ErrnoException.FromLastError("write(eventfd)");
            }
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    /// <summary>Reads and clears the counter; false when it was zero.</summary>
    public bool TryRead(out ulong value)
    {
        ulong v = 0;
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try
        {
            // Safe: reads 8 bytes into a local; the fd is kept alive by the AddRef above.
            nint n = Libc.read(_handle.Fd, &v, 8);
            value = v;
            return n == 8;
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    public void Dispose() => _handle.Dispose();
}
