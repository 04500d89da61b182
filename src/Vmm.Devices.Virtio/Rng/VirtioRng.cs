using System.Security.Cryptography;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Devices.Virtio.Rng;

/// <summary>
/// virtio-rng (virtio 1.2 §5.4): one request queue; every device-writable buffer the driver offers is filled
/// with bytes from the host CSPRNG, written straight into guest memory. Requests run on the device's own
/// <see cref="EventLoop"/> thread, fed by the queue's eventfd. A chain is filled with at most
/// <see cref="MaxBytesPerRequest"/> bytes (the spec lets the device return fewer); a malformed ring sets
/// DEVICE_NEEDS_RESET.
/// </summary>
public sealed class VirtioRng : IVirtioDevice
{
    public const int MaxBytesPerRequest = 64 * 1024;

    private static readonly ushort[] MaxSizes = [256];

    private readonly VirtioDeviceWorker _worker = new("virtio-rng");
    private long _bytesServed;

    public VirtioDeviceType DeviceType => VirtioDeviceType.Rng;
    public ReadOnlySpan<ushort> QueueMaxSizes => MaxSizes;
    public ulong AvailableFeatures => VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc;
    public IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions => [];

    /// <summary>Total random bytes handed to the guest.</summary>
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    public void ReadConfig(uint offset, Span<byte> data) => data.Clear();

    public void WriteConfig(uint offset, ReadOnlySpan<byte> data)
    {
    }

    public void Activate(VirtioActivation activation)
    {
        _worker.Start(activation, loop => loop.Add(activation.QueueEvents[0], new RequestHandler(this)));
        // Buffers may have been queued before DRIVER_OK without a kick we could see.
        activation.QueueEvents[0].Signal();
    }

    public void Reset() => _worker.Stop();

    public void Dispose() => Reset();

    /// <summary>Drains the request queue once (called on the loop thread, or directly by tests/benchmarks).</summary>
    internal void ProcessRequests()
    {
        VirtioActivation? a = _worker.Activation;
        if (a is null)
        {
            return;
        }
        VirtQueue queue = a.Queues[0];
        if (!queue.IsActive)
        {
            return;
        }
        bool used = false;
        VirtQueueError error;
        do
        {
            queue.DisableNotifications();
            while (queue.TryPop(out DescriptorChain chain, out error))
            {
                uint written = 0;
                foreach (Span<byte> segment in chain.WritableSegments)
                {
                    int n = (int)Math.Min((uint)segment.Length, MaxBytesPerRequest - written);
                    RandomNumberGenerator.Fill(segment[..n]);
                    written += (uint)n;
                    if (written == MaxBytesPerRequest)
                    {
                        break;
                    }
                }
                queue.AddUsed(chain, written);
                Interlocked.Add(ref _bytesServed, written);
                used = true;
            }
        }
        while (error == VirtQueueError.None && queue.EnableNotifications());
        _worker.FinishPass(a, 0, used, error);
    }

    private sealed class RequestHandler(VirtioRng owner) : IEventHandler
    {
        public void OnEvent(uint events) => owner.ProcessRequests();
    }
}
