using Vmm.Core.Virtio.Queues;

namespace Vmm.Core.Tests.Virtio;

public sealed class NotificationTests
{
    private static void CompleteOne(QueueFixture f)
    {
        f.Driver.Submit(default, 4);
        Assert.Equal(Vmm.Core.Virtio.Queues.VirtQueueError.None, f.PopOk().Complete(0));
    }

    [Fact]
    public void WithoutEventIdx_NoInterruptFlagSuppressesInterrupts()
    {
        using var f = new QueueFixture();
        CompleteOne(f);
        Assert.True(f.Queue.ShouldNotify());
        f.Driver.DisableInterrupts();
        CompleteOne(f);
        Assert.False(f.Queue.ShouldNotify());
        f.Driver.EnableInterrupts();
        Assert.True(f.Queue.ShouldNotify());
    }

    [Fact]
    public void WithEventIdx_InterruptOnlyWhenUsedIndexPassesUsedEvent()
    {
        using var f = new QueueFixture(eventIdx: true);
        CompleteOne(f);
        Assert.True(f.Queue.ShouldNotify());            // first check: always
        // The driver has not reaped (used_event still 0): further completions don't interrupt again.
        CompleteOne(f);
        Assert.False(f.Queue.ShouldNotify());
        // The driver reaps both; TryTakeUsed sets used_event = 2, i.e. "interrupt when entry 2 is used".
        Assert.True(f.Driver.TryTakeUsed(out _));
        Assert.True(f.Driver.TryTakeUsed(out _));
        Assert.False(f.Queue.ShouldNotify());           // nothing new since the last check
        CompleteOne(f);                                 // used idx 2 → 3 passes used_event 2
        Assert.True(f.Queue.ShouldNotify());
        // Batching: three completions then one check → one interrupt.
        Assert.True(f.Driver.TryTakeUsed(out _));
        CompleteOne(f);
        CompleteOne(f);
        CompleteOne(f);
        Assert.True(f.Queue.ShouldNotify());
        Assert.False(f.Queue.ShouldNotify());
    }

    [Fact]
    public void WithEventIdx_DriverDisablingInterruptsMovesUsedEventAway()
    {
        using var f = new QueueFixture(eventIdx: true);
        CompleteOne(f);
        Assert.True(f.Queue.ShouldNotify());
        Assert.True(f.Driver.TryTakeUsed(out _));
        f.Driver.DisableInterrupts();
        CompleteOne(f);
        Assert.False(f.Queue.ShouldNotify());
    }

    [Fact]
    public void WithoutEventIdx_DeviceSuppressesKicksWhileDraining()
    {
        using var f = new QueueFixture();
        Assert.True(f.Driver.NeedsKick());
        f.Queue.DisableNotifications();
        f.Driver.Submit(default, 4);
        Assert.False(f.Driver.Kick());
        // Re-enabling reports the chain that arrived while kicks were off, so it is not lost.
        Assert.True(f.Queue.EnableNotifications());
        f.PopOk();
        Assert.False(f.Queue.EnableNotifications());
        f.Driver.Submit(default, 4);
        Assert.True(f.Driver.Kick());
    }

    [Fact]
    public void WithEventIdx_KickOnlyWhenAvailIndexPassesAvailEvent()
    {
        using var f = new QueueFixture(eventIdx: true);
        Assert.False(f.Queue.EnableNotifications());     // avail_event = 0
        f.Driver.Submit(default, 4);
        Assert.True(f.Driver.Kick());                    // avail 0 → 1 passes avail_event 0
        f.Driver.Submit(default, 4);
        Assert.False(f.Driver.Kick());                   // device has not re-armed
        f.PopOk();
        f.PopOk();
        Assert.False(f.Queue.EnableNotifications());     // avail_event = 2, nothing pending
        f.Driver.Submit(default, 4);
        Assert.True(f.Driver.Kick());
    }

    [Fact]
    public void NeedsEvent_MatchesTheSpecFormula()
    {
        Assert.True(SplitRingLayout.NeedsEvent(0, 1, 0));
        Assert.False(SplitRingLayout.NeedsEvent(1, 1, 0));
        Assert.True(SplitRingLayout.NeedsEvent(1, 2, 0));
        Assert.True(SplitRingLayout.NeedsEvent(0xFFFF, 0, 0xFFFE)); // wrap-around
        Assert.False(SplitRingLayout.NeedsEvent(5, 3, 3));
    }
}
