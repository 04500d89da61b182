using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Core.Virtio;

/// <summary>Everything a device needs to run, handed over at DRIVER_OK.</summary>
/// <param name="Memory">Guest RAM.</param>
/// <param name="Queues">One per entry of <see cref="IVirtioDevice.QueueMaxSizes"/>; a queue the driver did not
/// enable has <see cref="VirtQueue.Ready"/> false.</param>
/// <param name="QueueEvents">The eventfd signalled when the driver notifies each queue (KVM ioeventfd, or the
/// testbed's simulated driver).</param>
/// <param name="Notifier">Interrupts and error reports back to the driver.</param>
/// <param name="AckedFeatures">Features the driver accepted.</param>
public sealed record VirtioActivation(
    GuestMemory Memory,
    IReadOnlyList<VirtQueue> Queues,
    IReadOnlyList<EventFd> QueueEvents,
    IVirtioNotifier Notifier,
    ulong AckedFeatures);
