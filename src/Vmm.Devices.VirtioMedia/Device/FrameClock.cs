using System.Diagnostics;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.Sessions;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// The pacing thread: sleeps until the earliest session deadline (or a wake-up), then lets each due session
/// produce its frames. Frames are produced here, never on the command thread, so a slow or stalled backend
/// cannot delay a command answer. A backend that throws gets an ERROR event for its session.
/// </summary>
public sealed class FrameClock : IDisposable
{
    private readonly SessionTable _sessions;
    private readonly Action<string>? _faulted;
    private readonly AutoResetEvent _wake = new(false);
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

    public void Wake() => _wake.Set();

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
            _wake.Set();
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
        while (!_stop)
        {
            long now = Stopwatch.GetTimestamp();
            long earliest = long.MaxValue;
            _sessions.Snapshot(snapshot);
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
            snapshot.Clear();
            if (_stop)
            {
                break;
            }
            now = Stopwatch.GetTimestamp();
            if (earliest <= now)
            {
                continue;
            }
            int waitMs = earliest == long.MaxValue
                ? Timeout.Infinite
                : (int)Math.Min(1000, (earliest - now) * 1000 / Stopwatch.Frequency);
            if (waitMs == 0)
            {
                // Less than a millisecond away: yield instead of sleeping past the deadline.
                Thread.Yield();
                continue;
            }
            _wake.WaitOne(waitMs);
        }
    }

    public void Dispose()
    {
        Stop(TimeSpan.FromSeconds(2));
        _wake.Dispose();
    }
}
