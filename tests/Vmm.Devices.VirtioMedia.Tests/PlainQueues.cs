using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Device;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The device's command and event queues laid out in <paramref name="Memory"/> with a simulated driver
/// each, negotiated without EVENT_IDX (as a simple driver, like our firmware's, does): for tests that activate the
/// device by hand instead of through the testbed.</summary>
internal sealed record PlainQueues(GuestMemory Memory, VirtQueue[] Queues, VirtQueueDriver[] Drivers, EventFd[] Kicks) : IDisposable
{
    public static PlainQueues For(VirtioMediaDevice device, GuestMemory memory)
    {
        EventFd[] kicks = [new EventFd(), new EventFd()];
        var queues = new VirtQueue[2];
        var drivers = new VirtQueueDriver[2];
        for (int i = 0; i < 2; i++)
        {
            queues[i] = new VirtQueue(device.QueueMaxSizes[i]);
            drivers[i] = new VirtQueueDriver(memory, new GuestAddress(0x10000UL * (ulong)(i + 1)), 16,
                new GuestAddress(0x100000UL * (ulong)(i + 1)), 0x100000, eventIdx: false, kick: kicks[i]);
            drivers[i].ConfigureDevice(queues[i]);
            Assert.Equal(VirtQueueError.None, queues[i].Activate(memory, VirtioFeatures.Version1));
        }
        return new PlainQueues(memory, queues, drivers, kicks);
    }

    public VirtioActivation Activation(IVirtioNotifier notifier) => new(Memory, Queues, Kicks, notifier, VirtioFeatures.Version1);

    public void Dispose()
    {
        foreach (EventFd e in Kicks)
        {
            e.Dispose();
        }
    }
}
