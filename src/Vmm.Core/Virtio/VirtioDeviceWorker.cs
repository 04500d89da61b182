using Vmm.Core.Events;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Core.Virtio;

/// <summary>
/// The activate/reset lifecycle of a virtio device that does its work on an <see cref="EventLoop"/> thread of its own
/// (virtio-rng, virtio-console): activation stops whatever ran before and starts a loop whose failure sets
/// DEVICE_NEEDS_RESET; reset stops the loop, joining its thread, and forgets the activation. A device composes one
/// and keeps only its queue work.
/// </summary>
public sealed class VirtioDeviceWorker : IDisposable
{
    private readonly Lock _lifecycle = new();
    private readonly string _name;
    private EventLoop? _loop;
    private VirtioActivation? _activation;

    /// <param name="name">The device's name: its loop thread's name and the prefix of its DEVICE_NEEDS_RESET
    /// reasons.</param>
    public VirtioDeviceWorker(string name)
    {
        _name = name;
    }

    /// <summary>The activation the loop serves; null before the first activation and after a reset.</summary>
    public VirtioActivation? Activation => _activation;

    /// <summary>Stops any previous loop and starts a new one for <paramref name="activation"/>;
    /// <paramref name="addHandlers"/> registers the device's descriptors before the thread starts.</summary>
    public void Start(VirtioActivation activation, Action<EventLoop> addHandlers)
    {
        ArgumentNullException.ThrowIfNull(activation);
        lock (_lifecycle)
        {
            StopLocked();
            _activation = activation;
            _loop = new EventLoop(_name, e => activation.Notifier.SignalNeedsReset($"{_name} stopped: {e.Message}"));
            addHandlers(_loop);
            _loop.Start();
        }
    }

    /// <summary>Stops the loop (waiting for its thread) and forgets the activation.</summary>
    public void Stop()
    {
        lock (_lifecycle)
        {
            StopLocked();
        }
    }

    public void Dispose() => Stop();

    /// <summary>Ends a pass over queue <paramref name="queueIndex"/>: interrupts the driver when used buffers were
    /// added and the queue's suppression allows it, and reports a malformed ring as DEVICE_NEEDS_RESET.</summary>
    public void FinishPass(VirtioActivation activation, int queueIndex, bool used, VirtQueueError error)
    {
        if (used && activation.Queues[queueIndex].ShouldNotify())
        {
            activation.Notifier.SignalUsedQueue(queueIndex);
        }
        if (error != VirtQueueError.None)
        {
            activation.Notifier.SignalNeedsReset($"{_name} queue {queueIndex}: {error}");
        }
    }

    private void StopLocked()
    {
        _loop?.Dispose();
        _loop = null;
        _activation = null;
    }
}
