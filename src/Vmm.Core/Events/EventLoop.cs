using Vmm.Core.Interop;

namespace Vmm.Core.Events;

/// <summary>Something an <see cref="EventLoop"/> calls when its descriptor becomes ready.</summary>
public interface IEventHandler
{
    /// <summary>Called on the loop's thread. <paramref name="events"/> is the epoll mask (EPOLLIN = 1, EPOLLERR = 8,
    /// EPOLLHUP = 16). For eventfds added with <see cref="EventLoop.Add(EventFd, IEventHandler)"/> the loop has
    /// already read (cleared) the counter. Must not throw; an exception escaping a handler stops the loop and is
    /// reported by <see cref="EventLoop.Fault"/>.</summary>
    void OnEvent(uint events);
}

/// <summary>A handler for descriptors that only wake the loop: the caller does its work after
/// <see cref="EventLoop.RunOnce"/> returns (an eventfd's counter is already cleared by then).</summary>
public sealed class WakeOnly : IEventHandler
{
    public static readonly WakeOnly Instance = new();

    private WakeOnly()
    {
    }

    public void OnEvent(uint events)
    {
    }
}

/// <summary>
/// An epoll loop on a dedicated thread: device workers wait here for their queue eventfds (KVM ioeventfds) instead
/// of running on vCPU threads. Handlers can be added and removed while it runs (from any thread, including a
/// handler); after <see cref="Remove"/> returns on a foreign thread, the handler is not called again once the loop's
/// current batch ends, and never for events of the removed registration. Dispatch allocates nothing.
/// </summary>
public sealed unsafe class EventLoop : IDisposable
{
    private const int MaxEvents = 32;
    private const uint StopToken = uint.MaxValue;

    private readonly FileDescriptorHandle _epoll;
    private readonly EventFd _wake = new();
    private readonly Lock _lock = new();
    private readonly string _name;
    private Entry[] _entries = new Entry[8];
    private uint _nextGeneration = 1;
    private Thread? _thread;
    private volatile bool _stopping;

    private readonly Action<Exception>? _onFault;

    /// <param name="onFault">Called once, on the loop's thread, when an exception escapes a handler and stops the
    /// loop — so a device can report DEVICE_NEEDS_RESET instead of going silent.</param>
    public EventLoop(string name, Action<Exception>? onFault = null)
    {
        _name = name;
        _onFault = onFault;
        int fd = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (fd < 0)
        {
            throw ErrnoException.FromLastError("epoll_create1");
        }
        _epoll = new FileDescriptorHandle(fd);
        Control(Libc.EPOLL_CTL_ADD, _wake.Handle.Fd, Libc.EPOLLIN, StopToken);
    }

    /// <summary>The exception that escaped a handler and stopped the loop, if any.</summary>
    public Exception? Fault { get; private set; }

    public bool IsRunning => _thread is { IsAlive: true };

    /// <summary>Watches an eventfd: when signalled, the loop reads (clears) it and calls
    /// <paramref name="handler"/>.</summary>
    public Registration Add(EventFd eventFd, IEventHandler handler)
    {
        ArgumentNullException.ThrowIfNull(eventFd);
        return AddCore(eventFd.Handle, Libc.EPOLLIN, handler, eventFd);
    }

    /// <summary>Watches any descriptor for <paramref name="events"/> (level-triggered: the handler must consume
    /// the readiness, e.g. read the data, or it will be called again at once).</summary>
    public Registration Add(FileDescriptorHandle fd, uint events, IEventHandler handler) => AddCore(fd, events, handler, null);

    private Registration AddCore(FileDescriptorHandle fd, uint events, IEventHandler handler, EventFd? drain)
    {
        ArgumentNullException.ThrowIfNull(fd);
        ArgumentNullException.ThrowIfNull(handler);
        lock (_lock)
        {
            int slot = Array.FindIndex(_entries, e => e is null);
            if (slot < 0)
            {
                slot = _entries.Length;
                var grown = new Entry[_entries.Length * 2];
                Array.Copy(_entries, grown, _entries.Length);
                Volatile.Write(ref _entries, grown);
            }
            uint generation = _nextGeneration++;
            var entry = new Entry(fd, handler, drain, generation);
            // Publish the entry before epoll can report the fd.
            Volatile.Write(ref _entries[slot], entry);
            try
            {
                Control(Libc.EPOLL_CTL_ADD, fd.Fd, events, Token(slot, generation));
            }
            catch
            {
                _entries[slot] = null!;
                throw;
            }
            return new Registration(this, slot, generation);
        }
    }

    /// <summary>Stops watching; idempotent.</summary>
    public void Remove(Registration registration)
    {
        if (!ReferenceEquals(registration.Loop, this))
        {
            return;
        }
        lock (_lock)
        {
            Entry? e = _entries[registration.Slot];
            if (e is null || e.Generation != registration.Generation)
            {
                return;
            }
            if (!e.Fd.IsClosed)
            {
                // A descriptor closed by its owner has already left the epoll set; nothing to delete then.
                Control(Libc.EPOLL_CTL_DEL, e.Fd.Fd, 0, 0);
            }
            Volatile.Write(ref _entries[registration.Slot], null!);
        }
    }

    /// <summary>Starts the loop's dedicated thread.</summary>
    public void Start()
    {
        if (_thread is not null)
        {
            throw new InvalidOperationException("event loop already started");
        }
        _stopping = false;
        _thread = new Thread(Run) { IsBackground = true, Name = _name };
        _thread.Start();
    }

    /// <summary>Stops the thread and waits for it (unless called from a handler, which just ends the loop).</summary>
    public void Stop()
    {
        _stopping = true;
        _wake.Signal();
        Thread? t = _thread;
        if (t is not null && t != Thread.CurrentThread)
        {
            t.Join();
            _thread = null;
        }
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> (−1 = forever) and dispatches one batch; returns the number
    /// of handlers called. For callers that run the loop on their own thread (and tests).</summary>
    public int RunOnce(int timeoutMs)
    {
        byte* events = stackalloc byte[Libc.EpollEventBufferSize(MaxEvents)];
        return WaitAndDispatch(events, timeoutMs);
    }

    private void Run()
    {
        // One fixed buffer for the thread's lifetime: no allocation per wakeup.
        byte* events = stackalloc byte[Libc.EpollEventBufferSize(MaxEvents)];
        try
        {
            while (!_stopping)
            {
                WaitAndDispatch(events, -1);
            }
        }
        catch (Exception e)
        {
            Fault = e;
            try
            {
                _onFault?.Invoke(e);
            }
            catch (Exception)
            {
                // The fault callback failing must not take the process down with it; Fault still records the cause.
            }
        }
    }

    private int WaitAndDispatch(byte* events, int timeoutMs)
    {
        bool added = false;
        _epoll.DangerousAddRef(ref added);
        int n;
        try
        {
            // Safe: events points at MaxEvents entries on the caller's stack; the epoll fd is kept alive by AddRef.
            n = Libc.epoll_wait(_epoll.Fd, events, MaxEvents, timeoutMs);
        }
        finally
        {
            _epoll.DangerousRelease();
        }
        if (n < 0)
        {
            int errno = Libc.LastErrno;
            if (errno == Libc.EINTR)
            {
                return 0;
            }
            throw new ErrnoException("epoll_wait", errno);
        }
        int called = 0;
        for (int i = 0; i < n; i++)
        {
            (uint ready, ulong token) = Libc.ReadEpollEvent(events, i);
            if ((uint)token == StopToken)
            {
                _wake.TryRead(out _);
                continue;
            }
            int slot = (int)(uint)token;
            uint generation = (uint)(token >> 32);
            Entry[] entries = Volatile.Read(ref _entries);
            Entry? e = slot < entries.Length ? Volatile.Read(ref entries[slot]) : null;
            if (e is null || e.Generation != generation)
            {
                // Removed (or slot reused) after epoll_wait returned: a stale event.
                continue;
            }
            e.Drain?.TryRead(out _);
            e.Handler.OnEvent(ready);
            called++;
        }
        return called;
    }

    private static ulong Token(int slot, uint generation) => (uint)slot | ((ulong)generation << 32);

    private void Control(int op, int fd, uint events, ulong token)
    {
        byte* ev = stackalloc byte[Libc.EpollEventBufferSize(1)];
        Libc.WriteEpollEvent(ev, 0, events, token);
        bool added = false;
        _epoll.DangerousAddRef(ref added);
        try
        {
            // Safe: ev is a stack buffer of one epoll_event, alive for the duration of the call; the epoll fd is kept alive.
            if (Libc.epoll_ctl(_epoll.Fd, op, fd, ev) != 0)
            {
                throw ErrnoException.FromLastError(op == Libc.EPOLL_CTL_DEL ? "epoll_ctl(DEL)" : "epoll_ctl(ADD)");
            }
        }
        finally
        {
            _epoll.DangerousRelease();
        }
    }

    public void Dispose()
    {
        Stop();
        _epoll.Dispose();
        _wake.Dispose();
    }

    /// <summary>A handle for <see cref="Remove"/>.</summary>
    public readonly record struct Registration(EventLoop Loop, int Slot, uint Generation);

    private sealed record Entry(FileDescriptorHandle Fd, IEventHandler Handler, EventFd? Drain, uint Generation);
}
