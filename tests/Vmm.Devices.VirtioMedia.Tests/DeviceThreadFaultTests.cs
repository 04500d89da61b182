using Microsoft.Extensions.Logging;
using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.Sessions;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>An exception on a device thread must end in DEVICE_NEEDS_RESET (or an ERROR event), never kill the VMM
/// (an unhandled exception on any .NET thread terminates the process — and this test host with it).</summary>
public class DeviceThreadFaultTests
{
    private sealed class ThrowingNotifier : IVirtioNotifier
    {
        public readonly ManualResetEventSlim NeedsReset = new(false);
        public string? Reason;

        public void SignalUsedQueue(int queueIndex) => throw new InvalidOperationException("interrupt injection failed");

        public void SignalConfigChange()
        {
        }

        public void SignalNeedsReset(string reason)
        {
            Reason = reason;
            NeedsReset.Set();
        }
    }

    [Fact]
    public void WorkerExceptionSignalsNeedsResetInsteadOfKillingTheProcess()
    {
        var log = new RecordingLogger();
        var notifier = new ThrowingNotifier();
        using var q = new VirtioDeviceHarness(VirtioMediaDevice.Create(new TestPatternOptions(), log), notifier: notifier);
        Span<byte> open = stackalloc byte[VirtioMediaWire.CmdOpenSize];
        MemoryMarshal.Write(open, new CmdHeader { Cmd = (uint)VirtioMediaCommand.Open });
        q.Drivers[0].Submit(open, VirtioMediaWire.RespOpenSize);
        q.Drivers[0].Kick();
        // The answer is published, then the interrupt throws on the worker thread.
        Assert.True(notifier.NeedsReset.Wait(TimeSpan.FromSeconds(5)), "no DEVICE_NEEDS_RESET after the worker faulted");
        Assert.Contains("interrupt injection failed", notifier.Reason);
        // The reason goes to the logger the host application gave the device, not to the console.
        Assert.Contains(log.Lines, l => l.Level == LogLevel.Error && l.Message.Contains("interrupt injection failed"));
        q.Device.Reset(); // the stopped worker is joined without hanging
    }

    private sealed class ScriptedSession : MediaBackendSession
    {
        public readonly ManualResetEventSlim Entered = new(false);
        public readonly ManualResetEventSlim Release = new(false);
        public bool Throw;
        private long _deadline;

        public override long NextFrameDeadline => Volatile.Read(ref _deadline);

        public override void ProduceFrames(long now)
        {
            Volatile.Write(ref _deadline, long.MaxValue);
            Entered.Set();
            if (Throw)
            {
                throw new InvalidOperationException("backend bug");
            }
            Release.Wait();
        }

        public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer)
        {
            buffer = null;
            return Errno.EINVAL;
        }

        public override void Dispose()
        {
        }
    }

    private static (SessionTable Table, ScriptedSession Backend, PendingEvents Events) OneSession()
    {
        var table = new SessionTable();
        var events = new PendingEvents();
        Assert.True(table.TryReserveId(out uint id));
        var backend = new ScriptedSession();
        var session = new MediaSession(id, events, null, () => null, _ => { }) { Backend = backend };
        table.Add(session);
        return (table, backend, events);
    }

    [Fact]
    public void ClockStuckInABackendIsNotStartedTwice()
    {
        (SessionTable table, ScriptedSession backend, _) = OneSession();
        using var clock = new FrameClock(table);
        Assert.True(clock.Start());
        Assert.True(backend.Entered.Wait(TimeSpan.FromSeconds(5)));
        Assert.False(clock.Stop(TimeSpan.FromMilliseconds(50)));
        Assert.True(clock.IsRunning);
        Assert.False(clock.Start()); // a second thread would share the stuck one's state
        backend.Release.Set();
        Assert.True(SpinWait.SpinUntil(() => !clock.IsRunning, TimeSpan.FromSeconds(5)));
        Assert.True(clock.Start());
        Assert.True(clock.Stop(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void ClockFaultOutsideABackendIsReportedNotFatal()
    {
        (SessionTable table, ScriptedSession backend, PendingEvents events) = OneSession();
        backend.Throw = true;
        // The ERROR event for the throwing backend cannot even be queued: the fault escapes the per-session handler.
        events.Added += () => throw new InvalidOperationException("event sink broken");
        string? reason = null;
        using var faulted = new ManualResetEventSlim(false);
        var log = new RecordingLogger();
        using var clock = new FrameClock(table, r =>
        {
            reason = r;
            faulted.Set();
        }, log);
        Assert.True(clock.Start());
        Assert.True(faulted.Wait(TimeSpan.FromSeconds(5)), "the clock fault was not reported");
        Assert.Contains("event sink broken", reason);
        Assert.Contains(log.Lines, l => l.Level == LogLevel.Error && l.Message.Contains("event sink broken"));
        Assert.True(SpinWait.SpinUntil(() => !clock.IsRunning, TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void ClockReportsAnErrorEventForTheThrowingSession()
    {
        (SessionTable table, ScriptedSession backend, PendingEvents events) = OneSession();
        backend.Throw = true;
        using var clock = new FrameClock(table);
        Assert.True(clock.Start());
        Assert.True(SpinWait.SpinUntil(() => events.Count > 0, TimeSpan.FromSeconds(5)));
        byte[] e = new byte[VirtioMediaWire.EventMaxSize];
        Assert.Equal(VirtioMediaWire.EventErrorSize, events.TryDequeue(e));
        Assert.Equal((uint)VirtioMediaEventType.Error, MemoryMarshal.Read<EventHeader>(e).Event);
        Assert.True(clock.Stop(TimeSpan.FromSeconds(5)));
    }
}
