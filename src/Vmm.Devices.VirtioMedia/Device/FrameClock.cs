using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
    private readonly ILogger _logger;
    private readonly EventLoop _loop = new("virtio-media frame clock");
    private readonly EventFd _wake = new();
    private readonly TimerFd _deadline = new();
    private readonly List<MediaSession> _steppedSnapshot = new(16);
    private readonly object _lifecycle = new();
    private Thread? _thread;
    private volatile bool _stop;
    private long _ticks;
    private long _sleepingWakeups;
    private long _timerMoves;
    // Whether the timerfd may hold a deadline (armed by the clock thread, or moved earlier by Wake); the clock
    // disarms it before sleeping with no deadline, which also clears an expiry nobody read.
    private volatile bool _timerArmed = true; // unknown at start: disarm once
    private readonly Lock _moveLock = new();
    // What the clock thread sleeps until (a Stopwatch timestamp; long.MaxValue for no deadline), or Scanning while it
    // looks at the sessions. Wake skips the eventfd when a deadline is no earlier than this: the thread will wake by
    // then anyway and see it. A new deadline is made under its session's lock before Wake reads this, and the thread
    // sets Scanning before it reads the deadlines, so either the scan sees it or Wake sees Scanning (and signals).
    private long _sleepingUntil = Scanning;
    private const long Scanning = long.MinValue;

    /// <param name="sessions">The sessions to pace.</param>
    /// <param name="faulted">Called (on the clock thread) when the loop hit an exception it cannot pin on one
    /// session; the clock thread then stops. The device turns this into DEVICE_NEEDS_RESET.</param>
    /// <param name="logger">Where such a failure is logged (none when null).</param>
    public FrameClock(SessionTable sessions, Action<string>? faulted = null, ILogger? logger = null)
    {
        _sessions = sessions;
        _faulted = faulted;
        _logger = logger ?? NullLogger.Instance;
        _loop.Add(_wake, WakeOnly.Instance);
        // No read of the expiry count: before it sleeps again the clock re-arms or disarms the timer, and
        // timerfd_settime resets the count and with it the readiness (one system call less per frame).
        _loop.Add(_deadline.Handle, 1 /* EPOLLIN */, WakeOnly.Instance);
    }



    /// <summary>Wake calls that signalled a sleeping clock thread (not counting those that found it awake, which
    /// only make it look once more); for tests.</summary>
    internal long SleepingWakeups => Interlocked.Read(ref _sleepingWakeups);

    /// <summary>Wake calls that moved a sleeping clock's timer to an earlier deadline instead of waking it; for
    /// tests.</summary>
    internal long TimerMoves => Interlocked.Read(ref _timerMoves);

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
            Interlocked.Exchange(ref _sleepingUntil, Scanning);
            // Each run gets its own snapshot list: a thread left behind by a timed-out Stop must not share one.
            var snapshot = new List<MediaSession>(16);
            _thread = new Thread(() => Run(snapshot)) { IsBackground = true, Name = "virtio-media frame clock" };
            _thread.Start();
            return true;
        }
    }

    /// <summary>Tells the clock that a session's next frame is now due at <paramref name="deadline"/> (a Stopwatch
    /// timestamp; long.MinValue: look at once). Signals the thread only when it sleeps past that.</summary>
    public void Wake(long deadline = long.MinValue)
    {
        Interlocked.MemoryBarrier(); // the caller's deadline write before the read below (Dekker with RunCore)
        long until = Volatile.Read(ref _sleepingUntil);
        if (until != Scanning)
        {
            if (deadline >= until)
            {
                return;
            }
            // The clock sleeps past the new deadline. While that is still ahead, move its timer there instead of
            // waking it now only for it to arm the timer and sleep again: one wake-up per frame instead of two when
            // the guest hands a buffer back after the clock went to sleep with none queued.
            if (TryMoveTimer(until, deadline))
            {
                return;
            }
            Interlocked.Increment(ref _sleepingWakeups);
        }
        try
        {
            _wake.Signal();
        }
        catch (ObjectDisposedException)
        {
            // The device is being disposed; there is nothing left to pace.
        }
    }

    // The clock thread arms its timer before it publishes what it sleeps until, and sets Scanning before it reads
    // the deadlines again, so a move that wins the exchange below happens while it sleeps, and any deadline it
    // misses is one the next scan sees. The lock orders competing movers' timer writes with their exchanges.
    private bool TryMoveTimer(long until, long deadline)
    {
        lock (_moveLock)
        {
            long now = Stopwatch.GetTimestamp();
            if (deadline <= now || Interlocked.CompareExchange(ref _sleepingUntil, deadline, until) != until)
            {
                return false;
            }
            try
            {
                _timerArmed = true;
                _deadline.Arm(Stopwatch.GetElapsedTime(now, deadline));
            }
            catch (ObjectDisposedException)
            {
                return true; // the device is being disposed
            }
            Interlocked.Increment(ref _timerMoves);
            return true;
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
            MediaLog.DeviceFailed(_logger, reason);
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
        _timerArmed = true; // unknown after a restart: disarm once
        while (!_stop)
        {
            // Under the movers' lock: a move in progress finishes its timer write first, so the arm below is the
            // last one and no earlier deadline of another session is overwritten by a late move.
            lock (_moveLock)
            {
                Interlocked.Exchange(ref _sleepingUntil, Scanning);
            }
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
                if (_timerArmed)
                {
                    // Unpaced streaming ends here after every frame: skip the system call when nothing is armed.
                    _deadline.Disarm();
                    _timerArmed = false;
                }
            }
            else
            {
                _deadline.Arm(TimeSpan.FromTicks(Math.Min(Stopwatch.GetElapsedTime(now, earliest).Ticks, TimeSpan.TicksPerSecond)));
                _timerArmed = true;
            }
            // The timer fires within a second at the latest (the cap above), so the thread may claim to sleep until
            // `earliest` even when that is further away.
            Interlocked.Exchange(ref _sleepingUntil, earliest);
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
