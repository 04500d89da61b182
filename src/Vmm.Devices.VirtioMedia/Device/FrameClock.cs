using System.Diagnostics;
using Vmm.Core.Events;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.Sessions;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// The pacing thread: sleeps until the earliest session deadline (or a wake-up), then lets each due session
/// produce its frames. Frames are produced here, never on the command thread, so a slow or stalled backend
/// cannot delay a command answer. A backend that throws gets an ERROR event for its session. The thread waits on
/// an <see cref="EventLoop"/> like every other device thread: a timerfd for the earliest deadline (nanosecond
/// resolution) and an eventfd for wake-ups.
/// </summary>
public sealed class FrameClock : IDisposable
{
    private readonly SessionTable _sessions;
    private readonly Action<string>? _faulted;
    private readonly EventLoop _loop = new("virtio-media frame clock");
    private readonly EventFd _wake = new();
    private readonly TimerFd _deadline = new();
    private readonly List<MediaSession> _steppedSnapshot = new(16);
    private readonly object _lifecycle = new();
    private Thread? _thread;
    private volatile bool _stop;
    private long _ticks;

    /// <param name="sessions">The sessions to pace.</param>
    /// <param name="faulted">Called (on the clock thread) when the loop hit an exception it cannot pin on one
    /// session; the clock thread then stops. The device turns this into DEVICE_NEEDS_RESET.</param>
    public FrameClock(SessionTable sessions, Action<string>? faulted = null)
    {
        _sessions = sessions;
        _faulted = faulted;
        _loop.Add(_wake, WakeOnly.Instance);
        _loop.Add(_deadline.Handle, 1 /* EPOLLIN */, _deadline);
    }



    /// <summary>Frames produced (all sessions) since start; for diagnostics.</summary>
    public long Ticks => Interlocked.Read(ref _ticks);

    /// <summary>True while a clock thread is alive (including one that <see cref="Stop"/> gave up waiting for).</summary>
    public bool IsRunning => _thread is { IsAlive: true };

    /// <summary>Starts the thread. Returns false without starting when a previous thread is still alive because a
    /// backend did not return within <see cref="Stop"/>'s timeout: two clock threads must never run at once.</summary>
    public bool Start()
    {
        lock (_lifecycle)
        {
            if (_thread is not null)
            {
                if (_thread.IsAlive && !_stop)
                {
                    return true; // already running
                }
                if (_thread.IsAlive)
                {
                    return false; // a stopped thread is still stuck in a backend
                }
                _thread = null;
            }
            _stop = false;
            // Each run gets its own snapshot list: a thread left behind by a timed-out Stop must not share one.
            var snapshot = new List<MediaSession>(16);
            _thread = new Thread(() => Run(snapshot)) { IsBackground = true, Name = "virtio-media frame clock" };
            _thread.Start();
            return true;
        }
    }

    public void Wake()
    {
        try
        {
            _wake.Signal();
        }
        catch (ObjectDisposedException)
        {
            // The device is being disposed; there is nothing left to pace.
        }
    }

    /// <summary>Stops the thread; waits up to <paramref name="timeout"/> for a backend to return. On a timeout the
    /// thread stays recorded (and <see cref="Start"/> refuses to start another) until it has ended.</summary>
    public bool Stop(TimeSpan timeout)
    {
        lock (_lifecycle)
        {
            Thread? t = _thread;
            if (t is null)
            {
                return true;
            }
            _stop = true;
            _wake.Signal();
            bool joined = t.Join(timeout);
            if (joined)
            {
                _thread = null;
            }
            return joined;
        }
    }

    private void Run(List<MediaSession> snapshot)
    {
        try
        {
            RunCore(snapshot);
        }
        catch (Exception e)
        {
            // Catch-all: an exception escaping this thread would kill the VMM.
            string reason = $"virtio-media frame clock failed: {e.GetType().Name}: {e.Message}";
            Console.Error.WriteLine(reason);
            try
            {
                _faulted?.Invoke(reason);
            }
            catch (Exception)
            {
                // Nothing more can be done from here; the message above was logged.
            }
        }
        finally
        {
            snapshot.Clear();
        }
    }

    private void RunCore(List<MediaSession> snapshot)
    {
        bool armed = true; // unknown after a restart: disarm once
        while (!_stop)
        {
            ProduceDue(Stopwatch.GetTimestamp(), snapshot, out long earliest);
            if (_stop)
            {
                break;
            }
            long now = Stopwatch.GetTimestamp();
            if (earliest <= now)
            {
                continue;
            }
            if (earliest == long.MaxValue)
            {
                if (armed)
                {
                    // Unpaced streaming ends here after every frame: skip the system call when nothing is armed.
                    _deadline.Disarm();
                    armed = false;
                }
            }
            else
            {
                _deadline.Arm(TimeSpan.FromTicks(Math.Min(Stopwatch.GetElapsedTime(now, earliest).Ticks, TimeSpan.TicksPerSecond)));
                armed = true;
            }
            _loop.RunOnce(-1);
        }
    }

    /// <summary>One pass without the thread (a device driven step by step, on one thread at a time): every session
    /// whose frame is due at <paramref name="now"/> produces it. Returns the number of frames produced and, in
    /// <paramref name="earliest"/>, the next deadline (<see cref="long.MaxValue"/> for none).</summary>
    public int ProduceDue(long now, out long earliest)
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("the frame clock thread is running");
        }
        return ProduceDue(now, _steppedSnapshot, out earliest);
    }

    private int ProduceDue(long now, List<MediaSession> snapshot, out long earliest)
    {
        earliest = long.MaxValue;
        int produced = 0;
        _sessions.Snapshot(snapshot);
        try
        {
            foreach (MediaSession s in snapshot)
            {
                if (s.Failed)
                {
                    continue;
                }
                try
                {
                    long due = s.Backend.NextFrameDeadline;
                    if (due <= now)
                    {
                        s.Backend.ProduceFrames(now);
                        Interlocked.Increment(ref _ticks);
                        produced++;
                        due = s.Backend.NextFrameDeadline;
                    }
                    earliest = Math.Min(earliest, due);
                }
                catch (Exception)
                {
                    // The affected session is known: it gets an ERROR event (if that throws too, the catch-all in
                    // Run reports the clock as failed).
                    s.SendError(Errno.EIO);
                }
            }
        }
        finally
        {
            snapshot.Clear();
        }
        return produced;
    }

    public void Dispose()
    {
        if (Stop(TimeSpan.FromSeconds(2)))
        {
            // Only once the thread is gone: a thread stuck in a backend still waits on these afterwards.
            _loop.Dispose();
            _deadline.Dispose();
            _wake.Dispose();
        }
    }
}
