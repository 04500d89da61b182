using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Testing.Virtio;

/// <summary>Plays transport and driver for any virtio device: 8 MiB of guest RAM, one simulated driver per queue
/// (kicking the queue eventfds), activation, and a notifier that records interrupts and DEVICE_NEEDS_RESET reasons
/// (or the caller's own notifier). Disposing it resets and disposes the device.</summary>
public sealed class VirtioDeviceHarness : IDisposable, IVirtioNotifier
{
    private readonly List<string> _needsReset = [];
    private int[] _interrupts;

    /// <param name="device">The device, activated here.</param>
    /// <param name="eventIdx">Whether the simulated driver negotiates VIRTIO_F_EVENT_IDX.</param>
    /// <param name="queueSize">Entries of each simulated ring.</param>
    /// <param name="notifier">Who the device signals; the harness itself (counting) when null.</param>
    public VirtioDeviceHarness(IVirtioDevice device, bool eventIdx = false, ushort queueSize = 16, IVirtioNotifier? notifier = null)
    {
        Device = device;
        Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), 8UL << 20));
        int count = device.QueueMaxSizes.Length;
        _interrupts = new int[count];
        Queues = new VirtQueue[count];
        Events = new EventFd[count];
        Drivers = new VirtQueueDriver[count];
        ulong features = VirtioFeatures.Version1 | VirtioFeatures.IndirectDesc | (eventIdx ? VirtioFeatures.EventIdx : 0);
        for (int i = 0; i < count; i++)
        {
            Queues[i] = new VirtQueue(device.QueueMaxSizes[i]);
            Events[i] = new EventFd();
            Drivers[i] = new VirtQueueDriver(Memory, new GuestAddress(0x10000UL * (ulong)(i + 1)), queueSize,
                new GuestAddress(0x100000UL * (ulong)(i + 1)), 0x100000, eventIdx, Events[i]);
            Drivers[i].ConfigureDevice(Queues[i]);
            VirtQueueError error = Queues[i].Activate(Memory, features);
            if (error != VirtQueueError.None)
            {
                throw new InvalidOperationException($"queue {i} refused its layout: {error}");
            }
        }
        device.Activate(new VirtioActivation(Memory, Queues, Events, notifier ?? this, features));
    }

    public IVirtioDevice Device { get; }
    public GuestMemory Memory { get; }
    public VirtQueue[] Queues { get; }
    public EventFd[] Events { get; }
    public VirtQueueDriver[] Drivers { get; }

    public int Interrupts(int queue) => Volatile.Read(ref _interrupts[queue]);

    public IReadOnlyList<string> NeedsResetReasons
    {
        get
        {
            lock (_needsReset)
            {
                return [.. _needsReset];
            }
        }
    }

    /// <summary>Waits for the device to return a chain on <paramref name="queue"/>.</summary>
    public DriverCompletion WaitUsed(int queue, int timeoutMs = 5000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (Environment.TickCount64 < deadline)
        {
            if (Drivers[queue].TryTakeUsed(out DriverCompletion c))
            {
                return c;
            }
            Thread.Sleep(1);
        }
        throw new TimeoutException($"device returned nothing on queue {queue}");
    }

    public bool WaitUntil(Func<bool> condition, int timeoutMs = 5000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (Environment.TickCount64 < deadline)
        {
            if (condition())
            {
                return true;
            }
            Thread.Sleep(1);
        }
        return condition();
    }

    public void SignalUsedQueue(int queueIndex) => Interlocked.Increment(ref _interrupts[queueIndex]);

    public void SignalConfigChange()
    {
    }

    public void SignalNeedsReset(string reason)
    {
        lock (_needsReset)
        {
            _needsReset.Add(reason);
        }
    }

    public void Dispose()
    {
        Device.Reset();
        Device.Dispose();
        foreach (EventFd e in Events)
        {
            e.Dispose();
        }
        Memory.Dispose();
    }
}
