using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The device on real split virtqueues (driven by the Core driver simulator).</summary>
public class QueueTransportTests
{
    [Fact]
    public void MoreEventsThanEventBuffersAreDeliveredInOrderWithPendingControlChangesCoalesced()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession watcher = bed.OpenSession();
        using TestbedSession setter = bed.OpenSession();
        Assert.Equal(0, watcher.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness }));
        // 40 changes, only 16 event buffers posted and nobody reaping: the first 16 fill the posted buffers, the
        // other 24 wait in the device, where (as in V4L2's per-subscription queue) only the newest value is kept.
        for (int i = 1; i <= 40; i++)
        {
            setter.SetControl(V4l2Const.CidBrightness, i);
        }
        var values = new List<int>();
        while (values.Count == 0 || values[^1] != 40)
        {
            byte[]? e = watcher.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromSeconds(5));
            Assert.NotNull(e);
            values.Add(MemoryMarshal.Read<EventEvent>(e).Event.CtrlValue);
        }
        int[] expected = [.. Enumerable.Range(1, 16), 40];
        Assert.Equal(expected, values);
        Assert.Null(watcher.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public void WithEventIdxPendingEventsGoOutAsSoonAsTheDriverPostsBuffers()
    {
        // The testbed negotiates EVENT_IDX: the driver kicks the eventq only when the device asked for it through
        // avail_event, so the device must ask while it holds events for lack of buffers.
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession watcher = bed.OpenSession();
        using TestbedSession setter = bed.OpenSession();
        Assert.Equal(0, watcher.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness }));
        for (int i = 1; i <= 17; i++)
        {
            setter.SetControl(V4l2Const.CidBrightness, i); // 16 fill the posted buffers, the 17th waits
        }
        Assert.Equal(1, bed.Device.Processor.Events.Count);
        Thread.Sleep(100); // let the worker finish its pass and go to sleep before the driver posts buffers
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 1; i <= 17; i++)
        {
            byte[]? e = watcher.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromSeconds(5)); // reaps, re-posts, kicks
            Assert.NotNull(e);
            Assert.Equal(i, MemoryMarshal.Read<EventEvent>(e).Event.CtrlValue);
        }
        clock.Stop();
        // The worker's poll timeout is 1 s: without the kick the 17th event arrives only then.
        Assert.True(clock.ElapsedMilliseconds < 500, $"pending event delivered after {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void AnEventBufferTooSmallOrNotWritableComesBackEmptyAndItsEventWaitsForTheNextBuffer()
    {
        // Issue 9 (hostile guest): a DQBUF event handed to such a buffer was consumed and lost, leaving the guest
        // waiting for a buffer the device had filled.
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession watcher = bed.OpenSession();
        using TestbedSession setter = bed.OpenSession();
        Assert.Equal(0, watcher.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness }));
        for (int i = 1; i <= 16; i++)
        {
            setter.SetControl(V4l2Const.CidBrightness, i); // fills the 16 posted event buffers; nobody reaps them
        }
        var small = new GuestAddress(1UL << 20);
        var readOnly = new GuestAddress(2UL << 20);
        bed.GuestMemory.GetSpan(small, 8).Fill(0xA5);
        bed.GuestMemory.GetSpan(readOnly, VirtioMediaWire.EventMaxSize).Fill(0xA5);
        bed.PostForeignEventChain([new DriverBuffer(small, 8, DeviceWritable: true)]);
        bed.PostForeignEventChain([new DriverBuffer(readOnly, VirtioMediaWire.EventMaxSize, DeviceWritable: false)]);
        setter.SetControl(V4l2Const.CidBrightness, 17); // the only pending event meets those two buffers first

        long deadline = Environment.TickCount64 + 5000;
        while (bed.ForeignEventCompletions.Count < 2 && Environment.TickCount64 < deadline)
        {
            bed.PumpEvents();
            Thread.Sleep(5);
        }
        Assert.Equal([0u, 0u], bed.ForeignEventCompletions.Select(c => c.WrittenLength));
        Assert.All(bed.GuestMemory.GetSpan(small, 8).ToArray(), b => Assert.Equal(0xA5, b));
        Assert.All(bed.GuestMemory.GetSpan(readOnly, VirtioMediaWire.EventMaxSize).ToArray(), b => Assert.Equal(0xA5, b));
        var values = new List<int>();
        for (int i = 1; i <= 17; i++)
        {
            byte[]? e = watcher.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromSeconds(2));
            Assert.True(e is not null, $"event {i} never arrived (got {string.Join(",", values)})");
            values.Add(MemoryMarshal.Read<EventEvent>(e).Event.CtrlValue);
        }
        Assert.Equal(Enumerable.Range(1, 17), values);
        Assert.Null(bed.NeedsResetReason);
    }

    [Fact]
    public void CloseHasNoWritablePartAndUsedLengthIsZero()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        TestbedSession s = bed.OpenSession();
        byte[] close = new byte[16];
        MemoryMarshal.Write(close, new CmdClose { Header = new CmdHeader { Cmd = 2 }, SessionId = s.Id });
        Assert.Equal(0, bed.SendCommand(close, Span<byte>.Empty));
        Assert.Equal(0, bed.Device.Processor.Sessions.Count);
    }

    [Fact]
    public void ResponsesNeverExceedTheWritableBuffer()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession s = bed.OpenSession();
        // G_FMT with room for the header only: the device answers EINVAL in 8 bytes rather than overflowing.
        byte[] req = new byte[16 + 208];
        MemoryMarshal.Write(req, new CmdIoctl { Header = new CmdHeader { Cmd = 3 }, SessionId = s.Id, Code = 4 });
        req[16] = 1;
        byte[] resp = new byte[8];
        Assert.Equal(8, bed.SendCommand(req, resp));
        Assert.Equal((uint)Errno.EINVAL, MemoryMarshal.Read<RespHeader>(resp).Status);
        // And with room: exactly 8 + 208.
        resp = new byte[4096];
        Assert.Equal(8 + 208, bed.SendCommand(req, resp));
    }

    [Fact]
    public void BrokenCommandRingSetsNeedsResetWithoutHanging()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        VirtQueueDriver driver = bed.CommandDriver;
        // Publish a head index beyond the queue size and kick.
        driver.PublishHead(1000);
        driver.Kick();
        long deadline = Environment.TickCount64 + 5000;
        while (bed.NeedsResetReason is null && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(5);
        }
        Assert.NotNull(bed.NeedsResetReason);
        Assert.Contains("command queue", bed.NeedsResetReason);
    }
}
