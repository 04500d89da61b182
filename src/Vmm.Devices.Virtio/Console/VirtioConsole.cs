using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Devices.Virtio.Console;

/// <summary>
/// virtio-console (virtio 1.2 §5.3), single port, no MULTIPORT: receiveq (0) carries host input to the guest,
/// transmitq (1) carries guest output (hvc0) to <see cref="Output"/>. Host input is pushed with
/// <see cref="EnqueueInput"/> (from any thread; buffered up to <see cref="InputCapacity"/> bytes, the rest dropped,
/// like a UART FIFO) and delivered when the guest has receive buffers. Output is written straight from guest
/// memory spans to the stream, no copy. Work happens on the device's <see cref="EventLoop"/> thread.
/// </summary>
public sealed class VirtioConsole : IVirtioDevice
{
    public const int ReceiveQueue = 0;
    public const int TransmitQueue = 1;
    public const int InputCapacity = 64 * 1024;

    private static readonly ushort[] MaxSizes = [64, 64];

    private readonly VirtioDeviceWorker _worker = new("virtio-console");
    private readonly Lock _inputLock = new();
    private readonly byte[] _input = new byte[InputCapacity];
    private readonly EventFd _inputReady = new();
    private int _inputStart;
    private int _inputCount;
    private long _inputDropped;

    /// <param name="output">Where guest console output goes (e.g. stdout). Written on the device thread.</param>
    public VirtioConsole(Stream output)
    {
        ArgumentNullException.ThrowIfNull(output);
        Output = output;
    }

    public Stream Output { get; }

    public VirtioDeviceType DeviceType => VirtioDeviceType.Console;
    public ReadOnlySpan<ushort> QueueMaxSizes => MaxSizes;
    public ulong AvailableFeatures => VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc;
    public IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions => [];

    /// <summary>Host input bytes dropped because the buffer was full.</summary>
    public long InputDropped => Interlocked.Read(ref _inputDropped);

    /// <summary>Host input not yet delivered to the guest.</summary>
    public int PendingInput
    {
        get
        {
            lock (_inputLock)
            {
                return _inputCount;
            }
        }
    }

    /// <summary>Queues host input (keyboard) for the guest; returns how many bytes were accepted.</summary>
    public int EnqueueInput(ReadOnlySpan<byte> data)
    {
        int accepted;
        lock (_inputLock)
        {
            accepted = Math.Min(data.Length, InputCapacity - _inputCount);
            for (int i = 0; i < accepted; i++)
            {
                _input[(_inputStart + _inputCount + i) % InputCapacity] = data[i];
            }
            _inputCount += accepted;
        }
        if (accepted < data.Length)
        {
            Interlocked.Add(ref _inputDropped, data.Length - accepted);
        }
        if (accepted > 0)
        {
            _inputReady.Signal();
        }
        return accepted;
    }

    /// <summary>No VIRTIO_CONSOLE_F_SIZE / MULTIPORT / EMERG_WRITE: the configuration space reads as zero.</summary>
    public void ReadConfig(uint offset, Span<byte> data) => data.Clear();

    public void WriteConfig(uint offset, ReadOnlySpan<byte> data)
    {
    }

    public void Activate(VirtioActivation activation)
    {
        _worker.Start(activation, loop =>
        {
            var receive = new Handler(this, isTransmit: false);
            loop.Add(activation.QueueEvents[ReceiveQueue], receive);
            loop.Add(_inputReady, receive);
            loop.Add(activation.QueueEvents[TransmitQueue], new Handler(this, isTransmit: true));
        });
        activation.QueueEvents[TransmitQueue].Signal();
        _inputReady.Signal();
    }

    public void Reset() => _worker.Stop();

    public void Dispose()
    {
        Reset();
        _inputReady.Dispose();
    }

    /// <summary>Writes every pending transmit chain to <see cref="Output"/>.</summary>
    internal void ProcessTransmit()
    {
        VirtioActivation? a = _worker.Activation;
        if (a is null || !a.Queues[TransmitQueue].IsActive)
        {
            return;
        }
        VirtQueue queue = a.Queues[TransmitQueue];
        bool used = false;
        VirtQueueError error;
        do
        {
            queue.DisableNotifications();
            while (queue.TryPop(out DescriptorChain chain, out error))
            {
                foreach (ReadOnlySpan<byte> segment in chain.ReadableSegments)
                {
                    Output.Write(segment);
                }
                queue.AddUsed(chain, 0);
                used = true;
            }
        }
        while (error == VirtQueueError.None && queue.EnableNotifications());
        if (used)
        {
            Output.Flush();
        }
        _worker.FinishPass(a, TransmitQueue, used, error);
    }

    /// <summary>Moves buffered host input into the guest's receive buffers while both exist.</summary>
    internal void ProcessReceive()
    {
        VirtioActivation? a = _worker.Activation;
        if (a is null || !a.Queues[ReceiveQueue].IsActive)
        {
            return;
        }
        VirtQueue queue = a.Queues[ReceiveQueue];
        bool used = false;
        VirtQueueError error = VirtQueueError.None;
        lock (_inputLock)
        {
            // Re-arm kicks before sleeping (with EVENT_IDX, avail_event must advance or the driver stops kicking);
            // if buffers arrived meanwhile and input is waiting, go round again.
            do
            {
                DeliverLocked(queue, ref used, out error);
            }
            while (error == VirtQueueError.None && queue.EnableNotifications() && _inputCount > 0);
        }
        _worker.FinishPass(a, ReceiveQueue, used, error);
    }

    private void DeliverLocked(VirtQueue queue, ref bool used, out VirtQueueError error)
    {
        error = VirtQueueError.None;
        {
            while (_inputCount > 0 && queue.TryPop(out DescriptorChain chain, out error))
            {
                ChainWriter writer = chain.CreateWriter();
                while (_inputCount > 0)
                {
                    Span<byte> target = writer.GetSpan();
                    if (target.IsEmpty)
                    {
                        break;
                    }
                    // Copy the contiguous part of the ring buffer that fits.
                    int n = Math.Min(Math.Min(target.Length, _inputCount), InputCapacity - _inputStart);
                    _input.AsSpan(_inputStart, n).CopyTo(target);
                    writer.Advance(n);
                    _inputStart = (_inputStart + n) % InputCapacity;
                    _inputCount -= n;
                }
                queue.AddUsed(chain, writer.BytesWritten);
                used = true;
            }
        }
    }

    private sealed class Handler(VirtioConsole owner, bool isTransmit) : IEventHandler
    {
        public void OnEvent(uint events)
        {
            if (isTransmit)
            {
                owner.ProcessTransmit();
            }
            else
            {
                owner.ProcessReceive();
            }
        }
    }
}
