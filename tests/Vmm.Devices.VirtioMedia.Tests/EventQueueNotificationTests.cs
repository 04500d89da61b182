using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>A driver re-posts an event buffer after every frame. While no event waits for a buffer, the device asks
/// it not to kick the eventq (each kick would wake the command thread for nothing: one wake-up per frame).</summary>
public class EventQueueNotificationTests
{
    [Fact]
    public void Without_EVENT_IDX_an_idle_device_asks_for_no_eventq_kicks()
    {
        using var q = new VirtioDeviceHarness(VirtioMediaDevice.Create(new TestPatternOptions()));
        VirtQueueDriver events = q.Drivers[1];
        SpinWait.SpinUntil(() => !events.NeedsKick(), TimeSpan.FromSeconds(5));
        Assert.False(events.NeedsKick(), "the device still asks for eventq kicks with no event pending");

        // The command queue still asks for kicks while the device sleeps: commands must wake it.
        Assert.True(q.Drivers[0].NeedsKick());
        Span<DriverBuffer> one = [new DriverBuffer(events.AllocateBuffer(VirtioMediaWire.EventMaxSize), VirtioMediaWire.EventMaxSize, DeviceWritable: true)];
        events.AddChain(one);
        Assert.False(events.Kick()); // the driver honours the request
        Assert.Empty(q.NeedsResetReasons);
    }
}
