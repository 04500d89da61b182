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
    private readonly AutoResetEvent _wake = new(false);
    private readonly List<MediaSession> _snapshot = new(16);
    private Thread? _thread;
    private volatile bool _stop;

    public FrameClock(SessionTable sessions) => _sessions = sessions;

    /// <summary>Frames produced (all sessions) since start; for diagnostics.</summary>
    public long Ticks { get; private set; }

    public bool IsRunning => _thread is not null;

    public void Start()
    {
        if (_thread is not null)
        {
            return;
        }
        _stop = false;
        _thread = new Thread(Run) { IsBackground = true, Name = "virtio-media frame clock" };
        _thread.Start();
    }

    public void Wake() => _wake.Set();

    /// <summary>Stops the thread; waits up to <paramref name="timeout"/> for a backend to return.</summary>
    public bool Stop(TimeSpan timeout)
    {
        Thread? t = _thread;
        if (t is null)
        {
            return true;
        }
        _stop = true;
        _wake.Set();
        bool joined = t.Join(timeout);
        _thread = null;
        return joined;
    }

    private void Run()
    {
        while (!_stop)
        {
            long now = Stopwatch.GetTimestamp();
            long earliest = long.MaxValue;
            _sessions.Snapshot(_snapshot);
            foreach (MediaSession s in _snapshot)
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
                        Ticks++;
                        due = s.Backend.NextFrameDeadline;
                    }
                    earliest = Math.Min(earliest, due);
                }
                catch (Exception)
                {
                    s.SendError(Errno.EIO);
                }
            }
            _snapshot.Clear();
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
