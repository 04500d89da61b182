using Vmm.Core.Events;

namespace Vmm.Core.Tests.Events;

public sealed class EventLoopTests
{
    private sealed class CountingHandler : IEventHandler
    {
        public int Calls;
        public uint LastEvents;
        public readonly SemaphoreSlim Called = new(0);
        public Action? OnCall;

        public void OnEvent(uint events)
        {
            LastEvents = events;
            Interlocked.Increment(ref Calls);
            OnCall?.Invoke();
            Called.Release();
        }
    }

    [Fact]
    public void SignalledEventFd_CallsHandlerOnLoopThread_AndDrainsCounter()
    {
        using var loop = new EventLoop("test");
        using var fd = new EventFd();
        var handler = new CountingHandler();
        int? handlerThread = null;
        handler.OnCall = () => handlerThread = Environment.CurrentManagedThreadId;
        loop.Add(fd, handler);
        loop.Start();
        fd.Signal(5);
        Assert.True(handler.Called.Wait(TimeSpan.FromSeconds(5)));
        Assert.Equal(1u, handler.LastEvents & 1u);
        Assert.NotEqual(Environment.CurrentManagedThreadId, handlerThread);
        Assert.False(fd.TryRead(out _));   // the loop cleared the counter
        loop.Stop();
        Assert.False(loop.IsRunning);
    }

    [Fact]
    public void RunOnce_WithNothingReady_TimesOut()
    {
        using var loop = new EventLoop("test");
        using var fd = new EventFd();
        var handler = new CountingHandler();
        loop.Add(fd, handler);
        Assert.Equal(0, loop.RunOnce(10));
        fd.Signal();
        Assert.Equal(1, loop.RunOnce(1000));
        Assert.Equal(1, handler.Calls);
    }

    [Fact]
    public void RemovedHandler_IsNotCalled_EvenForAlreadyPendingEvents()
    {
        using var loop = new EventLoop("test");
        using var a = new EventFd();
        using var b = new EventFd();
        var ha = new CountingHandler();
        var hb = new CountingHandler();
        EventLoop.Registration ra = loop.Add(a, ha);
        loop.Add(b, hb);
        a.Signal();
        loop.Remove(ra);
        loop.Remove(ra); // idempotent
        b.Signal();
        Assert.Equal(1, loop.RunOnce(1000));
        Assert.Equal(0, ha.Calls);
        Assert.Equal(1, hb.Calls);
    }

    [Fact]
    public void HandlersCanBeAddedAndRemovedWhileRunning()
    {
        using var loop = new EventLoop("test");
        loop.Start();
        var fds = new EventFd[20];
        var handlers = new CountingHandler[20];
        var regs = new EventLoop.Registration[20];
        for (int i = 0; i < fds.Length; i++)
        {
            fds[i] = new EventFd();
            handlers[i] = new CountingHandler();
            regs[i] = loop.Add(fds[i], handlers[i]);
        }
        for (int i = 0; i < fds.Length; i += 2)
        {
            loop.Remove(regs[i]);
        }
        foreach (EventFd fd in fds)
        {
            fd.Signal();
        }
        for (int i = 1; i < fds.Length; i += 2)
        {
            Assert.True(handlers[i].Called.Wait(TimeSpan.FromSeconds(5)));
        }
        loop.Stop();
        for (int i = 0; i < fds.Length; i += 2)
        {
            Assert.Equal(0, handlers[i].Calls);
        }
        foreach (EventFd fd in fds)
        {
            fd.Dispose();
        }
    }

    [Fact]
    public void HandlerException_StopsLoop_AndIsReported()
    {
        using var loop = new EventLoop("test");
        using var fd = new EventFd();
        var handler = new CountingHandler { OnCall = () => throw new InvalidOperationException("boom") };
        loop.Add(fd, handler);
        loop.Start();
        fd.Signal();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (loop.IsRunning && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(5);
        }
        Assert.False(loop.IsRunning);
        Assert.IsType<InvalidOperationException>(loop.Fault);
    }

    [Fact]
    public void HandlerException_IsHandedToTheFaultCallback()
    {
        using var faulted = new ManualResetEventSlim();
        Exception? seen = null;
        using var loop = new EventLoop("test", e => { seen = e; faulted.Set(); });
        using var fd = new EventFd();
        loop.Add(fd, new CountingHandler { OnCall = () => throw new InvalidOperationException("boom") });
        loop.Start();
        fd.Signal();
        Assert.True(faulted.Wait(TimeSpan.FromSeconds(5)), "the fault callback was not called");
        Assert.Equal("boom", Assert.IsType<InvalidOperationException>(seen).Message);
    }

    [Fact]
    public void A_timerfd_deadline_wakes_the_loop_once_and_disarming_cancels_it()
    {
        using var loop = new EventLoop("test");
        using var timer = new TimerFd();
        loop.Add(timer.Handle, 1, timer);
        timer.Arm(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, loop.RunOnce(5000)); // fires; the handler consumes the expiry
        Assert.Equal(0, loop.RunOnce(0));    // one-shot: nothing more
        timer.Arm(TimeSpan.FromHours(1));
        timer.Disarm();
        Assert.Equal(0, loop.RunOnce(20));
    }

    [Fact]
    public void Re_arming_or_disarming_a_fired_timerfd_clears_its_readiness_without_a_read()
    {
        // The frame clock relies on this: it never reads its timer's expiry count, because it arms or disarms the
        // timer before every sleep, which resets the count.
        using var loop = new EventLoop("test");
        using var timer = new TimerFd();
        loop.Add(timer.Handle, 1, WakeOnly.Instance);
        timer.Arm(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, loop.RunOnce(5000));
        Assert.Equal(1, loop.RunOnce(0));    // not read: still readable
        timer.Arm(TimeSpan.FromHours(1));
        Assert.Equal(0, loop.RunOnce(20));   // re-armed: the expiry is gone
        timer.Arm(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, loop.RunOnce(5000));
        timer.Disarm();
        Assert.Equal(0, loop.RunOnce(20));   // disarmed: gone too
    }
}
