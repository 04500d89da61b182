using Vmm.Core.Interop;

namespace Vmm.Core.Events;

/// <summary>
/// A one-shot Linux timerfd on CLOCK_MONOTONIC (non-blocking, close-on-exec): a deadline an <see cref="EventLoop"/>
/// waits for alongside its descriptors, with nanosecond resolution instead of a millisecond wait timeout.
/// </summary>
public sealed unsafe class TimerFd : IDisposable, IEventHandler
{
    private const int ClockMonotonic = 1, TfdNonBlock = 0x800, TfdCloExec = 0x80000;
    private readonly FileDescriptorHandle _handle;

    public TimerFd()
    {
        int fd = Libc.timerfd_create(ClockMonotonic, TfdNonBlock | TfdCloExec);
        if (fd < 0)
        {
            throw ErrnoException.FromLastError("timerfd_create");
        }
        _handle = new FileDescriptorHandle(fd);
    }

    public FileDescriptorHandle Handle => _handle;

    /// <summary>Fires once after <paramref name="delay"/> (at least 1 ns); a later call replaces the deadline.</summary>
    public void Arm(TimeSpan delay)
    {
        long ns = Math.Max(1, delay.Ticks * 100);
        Set(new Libc.ITimerSpec { ValueSec = ns / 1_000_000_000, ValueNsec = ns % 1_000_000_000 });
    }

    /// <summary>Cancels the deadline.</summary>
    public void Disarm() => Set(default);

    private void Set(Libc.ITimerSpec spec)
    {
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try
        {
            // Safe: spec is a local passed by address for the call; the fd is kept alive by the AddRef above.
            if (Libc.timerfd_settime(_handle.Fd, 0, &spec, null) != 0)
            {
                throw ErrnoException.FromLastError("timerfd_settime");
            }
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    /// <summary>As an <see cref="EventLoop"/> handler: consumes the expiry so the level-triggered loop rests.</summary>
    public void OnEvent(uint events)
    {
        ulong expirations = 0;
        bool added = false;
        _handle.DangerousAddRef(ref added);
        try
        {
            // Safe: reads 8 bytes into a local; the fd is kept alive by the AddRef above.
            Libc.read(_handle.Fd, &expirations, 8);
        }
        finally
        {
            _handle.DangerousRelease();
        }
    }

    public void Dispose() => _handle.Dispose();
}
