using System.Buffers.Binary;
using System.Diagnostics;
using Vmm.Core.Events;
using Vmm.Core.Interop;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Device;

public sealed partial class VirtioMediaDevice
{
    public const int CommandQueueIndex = 0;
    public const int EventQueueIndex = 1;

    // One command's request and response, MediaDeviceLimits.MaxCommandBytes each (the default 64 KiB holds a QBUF
    // of 8 planes with a full 16 KiB shadow buffer of SG entries).
    private readonly byte[] _request;
    private readonly byte[] _response;
    private readonly byte[] _event = new byte[VirtioMediaWire.EventMaxSize];
    private readonly object _lifecycle = new();
    // The eventq is filled by whichever thread produced an event (DeliverEventsNow) and by the command thread; this
    // lock serialises them. _activation changes under it too, so a late thread never touches a reset queue.
    private readonly object _eventQueueLock = new();
    private VirtioActivation? _activation;
    private EventFd? _wakeWorker;
    private Thread? _worker;
    private volatile bool _stopWorker;
    private bool _steppedBroken;

    /// <summary>Starts the device on the transport's (already activated) queues: a command worker fed by the
    /// commandq eventfd, which also hands pending events to the eventq, plus the frame clock.</summary>
    public void Activate(VirtioActivation activation)
    {
        CheckActivation(activation);
        lock (_lifecycle)
        {
            StopWorker();
            SetActivation(activation);
            Volatile.Write(ref _memory, activation.Memory);
            _wakeWorker = new EventFd();
            _stopWorker = false;
            _worker = new Thread(WorkerLoop) { IsBackground = true, Name = "virtio-media commands" };
            _worker.Start();
            if (!_clock.Start())
            {
                Fault(activation, "virtio-media frame clock of the previous activation is still stuck in a backend");
            }
        }
    }

    /// <summary>Starts the device without its threads, for deterministic single-threaded driving (the fuzzer, the
    /// testbed's stepped mode): nothing happens until the caller runs <see cref="ProcessQueues"/> (commands and
    /// events) and <see cref="ProduceFrames"/> (the frame clock's work), on one thread at a time.</summary>
    public void ActivateStepped(VirtioActivation activation)
    {
        CheckActivation(activation);
        lock (_lifecycle)
        {
            StopWorker();
            _clock.Stop(TimeSpan.FromSeconds(2));
            SetActivation(activation);
            _steppedBroken = false;
            Volatile.Write(ref _memory, activation.Memory);
        }
    }

    /// <summary>Stepped mode: one pass of the command worker's loop without waiting — host descriptors that are
    /// ready, every available command, then pending events into posted eventq buffers. Returns false once a queue
    /// broke (DEVICE_NEEDS_RESET was signalled; later calls do nothing).</summary>
    public bool ProcessQueues()
    {
        VirtioActivation a = _activation ?? throw new InvalidOperationException("the device is not activated");
        if (_worker is not null)
        {
            throw new InvalidOperationException("the device runs its own command thread");
        }
        if (_steppedBroken)
        {
            return false;
        }
        _loop.RunOnce(0);
        VirtQueue commands = a.Queues[CommandQueueIndex];
        VirtQueue events = a.Queues[EventQueueIndex];
        _steppedBroken = !DrainCommands(a, commands, events) || !DeliverEvents(a, events);
        return !_steppedBroken;
    }

    /// <summary>Stepped mode: what one pass of the frame clock does at <paramref name="now"/> (a
    /// <see cref="System.Diagnostics.Stopwatch"/> timestamp): every session whose frame is due produces it. Returns
    /// the number of frames produced.</summary>
    public int ProduceFrames(long now) => _clock.ProduceDue(now, out _);

    public void Reset()
    {
        lock (_lifecycle)
        {
            StopWorker();
            StopAll();
            SetActivation(null);
        }
    }

    private static void CheckActivation(VirtioActivation activation)
    {
        ArgumentNullException.ThrowIfNull(activation);
        if (activation.Queues.Count < 2 || activation.QueueEvents.Count < 2)
        {
            throw new ArgumentException("virtio-media needs the command and event queues", nameof(activation));
        }
    }

    private void SetActivation(VirtioActivation? activation)
    {
        lock (_eventQueueLock)
        {
            _activation = activation;
        }
    }

    // The thread that produced the event (the frame clock, for a DQBUF) puts it in the eventq itself: a thread
    // wake-up less per frame than handing it to the command thread. Events that find no posted buffer stay pending,
    // and the command thread is woken to ask the driver for a kick when it posts more.
    partial void OnEventAddedCore()
    {
        if (DeliverEventsNow() && Processor.Events.Count == 0)
        {
            return;
        }
        try
        {
            _wakeWorker?.Signal();
        }
        catch (ObjectDisposedException)
        {
            // Reset raced with a frame: the event is dropped with the sessions anyway.
        }
    }

    // False when the device is not active or its eventq broke.
    private bool DeliverEventsNow()
    {
        lock (_eventQueueLock)
        {
            return _activation is { } a && DeliverEventsLocked(a, a.Queues[EventQueueIndex]);
        }
    }

    private void StopWorker()
    {
        if (_worker is null)
        {
            return;
        }
        _stopWorker = true;
        _wakeWorker!.Signal();
        _worker.Join();
        _worker = null;
        _wakeWorker.Dispose();
        _wakeWorker = null;
    }

    // Catch-all: an exception escaping a .NET thread kills the whole VMM, so a bug reachable from the guest (or a
    // failing notifier/eventfd) ends in DEVICE_NEEDS_RESET for this device and the worker stops processing.
    private void WorkerLoop()
    {
        VirtioActivation a = _activation!;
        try
        {
            WorkerLoopCore(a);
        }
        catch (Exception e)
        {
            Fault(a, $"virtio-media worker failed: {e.GetType().Name}: {e.Message}");
        }
    }

    private void Fault(VirtioActivation a, string reason)
    {
        MediaLog.DeviceFailed(_logger, reason);
        try
        {
            a.Notifier.SignalNeedsReset(reason);
        }
        catch (Exception)
        {
            // The notifier itself failed: the message above is all that can be done.
        }
    }

    // The command thread runs the device's event loop: queue doorbells, the wake-up for new events, and the host
    // descriptors sessions watch (a proxied node's DQBUF and events) are all dispatched here, in order with command
    // handling, so a session's ioctls and its host events never race.
    private void WorkerLoopCore(VirtioActivation a)
    {
        VirtQueue commands = a.Queues[CommandQueueIndex];
        VirtQueue events = a.Queues[EventQueueIndex];
        var registrations = new[]
        {
            // The loop clears each eventfd before calling the handler; the drain below does the work.
            _loop.Add(a.QueueEvents[CommandQueueIndex], WakeOnly.Instance),
            _loop.Add(a.QueueEvents[EventQueueIndex], WakeOnly.Instance),
            _loop.Add(_wakeWorker!, WakeOnly.Instance),
        };
        try
        {
            bool broken = false;
            while (!_stopWorker)
            {
                // Drain at start too: it covers chains queued before DRIVER_OK. A kick or event arriving during the
                // drain leaves its eventfd signalled, so the wait below returns at once.
                if (!broken)
                {
                    broken = !DrainCommands(a, commands, events) || !DeliverEvents(a, events);
                }
                if (!broken && commands.EnableNotifications())
                {
                    continue;
                }
                // Events still pending for lack of eventq buffers: ask the driver to kick the eventq when it posts
                // some (with EVENT_IDX it would not otherwise, and the events would wait for the timeout), and
                // re-check for buffers posted before the request became visible. With none pending, ask it not to:
                // a driver re-posts an event buffer after every frame, and each kick would wake this thread for
                // nothing. An event that finds no buffer later wakes this thread, which then asks again.
                if (!broken && Processor.Events.Count > 0 && EnableEventQueueNotifications(events))
                {
                    continue;
                }
                if (!broken && Processor.Events.Count == 0)
                {
                    DisableEventQueueNotifications(events);
                }
                _loop.RunOnce(1000);
            }
        }
        finally
        {
            foreach (EventLoop.Registration r in registrations)
            {
                _loop.Remove(r);
            }
        }
    }

    // Returns false when the command queue broke (the driver violated the ring protocol).
    private bool DrainCommands(VirtioActivation a, VirtQueue commands, VirtQueue events)
    {
        commands.DisableNotifications();
        bool any = false;
        while (commands.TryPop(out DescriptorChain chain, out VirtQueueError error))
        {
            long poppedAt = Stopwatch.GetTimestamp();
            int capacity = (int)Math.Min(chain.WritableLength, (uint)_response.Length);
            int written;
            uint command = 0; // not a command: what an oversized or header-less request counts as
            if (chain.ReadableLength > (uint)_request.Length)
            {
                // Never acted on truncated: a cut payload could parse as a different, valid one.
                written = CommandProcessor.RefuseOversized(_response.AsSpan(0, capacity));
            }
            else
            {
                ChainReader reader = chain.CreateReader();
                int requestLength = reader.Read(_request);
                if (requestLength >= sizeof(uint))
                {
                    command = BinaryPrimitives.ReadUInt32LittleEndian(_request);
                }
                written = Processor.Process(_request.AsSpan(0, requestLength), _response.AsSpan(0, capacity));
            }
            // Events produced by the command (SUBSCRIBE_EVENT initial events) go out before its answer.
            DeliverEvents(a, events);
            ChainWriter writer = chain.CreateWriter();
            writer.Write(_response.AsSpan(0, written));
            commands.AddUsed(chain, writer.BytesWritten);
            Processor.Metrics.CommandAnswered(command, poppedAt);
            any = true;
        }
        if (any && commands.ShouldNotify())
        {
            a.Notifier.SignalUsedQueue(CommandQueueIndex);
        }
        if (!commands.IsActive)
        {
            a.Notifier.SignalNeedsReset($"virtio-media command queue: {commands.Error}");
            return false;
        }
        return true;
    }

    private void DisableEventQueueNotifications(VirtQueue events)
    {
        lock (_eventQueueLock)
        {
            events.DisableNotifications();
        }
    }

    private bool EnableEventQueueNotifications(VirtQueue events)
    {
        lock (_eventQueueLock)
        {
            return events.EnableNotifications();
        }
    }

    private bool DeliverEvents(VirtioActivation a, VirtQueue events)
    {
        lock (_eventQueueLock)
        {
            return DeliverEventsLocked(a, events);
        }
    }

    // Moves pending events into posted eventq buffers; events wait in PendingEvents while none is posted. A buffer
    // too small for the next event (or not device-writable at all) goes back empty and the event waits for the next
    // buffer, so a broken buffer never costs an event. Called under _eventQueueLock.
    private bool DeliverEventsLocked(VirtioActivation a, VirtQueue events)
    {
        bool any = false;
        while (Processor.Events.Count > 0 && events.TryPop(out DescriptorChain chain, out _))
        {
            int n = Processor.Events.TryDequeue(_event.AsSpan(0, (int)Math.Min(chain.WritableLength, (uint)_event.Length)));
            uint written = 0;
            if (n > 0)
            {
                ChainWriter writer = chain.CreateWriter();
                writer.Write(_event.AsSpan(0, n));
                written = writer.BytesWritten;
                Processor.Metrics.EventDelivered(BinaryPrimitives.ReadUInt32LittleEndian(_event));
            }
            events.AddUsed(chain, written);
            any = true;
        }
        if (any && events.ShouldNotify())
        {
            a.Notifier.SignalUsedQueue(EventQueueIndex);
        }
        if (!events.IsActive && events.Error != VirtQueueError.NotReady)
        {
            a.Notifier.SignalNeedsReset($"virtio-media event queue: {events.Error}");
            return false;
        }
        return true;
    }
}
