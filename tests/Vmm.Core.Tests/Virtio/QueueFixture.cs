using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

using Vmm.Testing.Virtio;

namespace Vmm.Core.Tests.Virtio;

/// <summary>A 1 MiB guest with one queue: rings at 0x1000, buffers from 0x10000.</summary>
internal sealed class QueueFixture : IDisposable
{
    public const ulong RamSize = 1 << 20;
    public static readonly GuestAddress RingArea = new(0x1000);
    public static readonly GuestAddress BufferArea = new(0x10000);

    public QueueFixture(ushort size = 16, bool eventIdx = false, bool indirect = true, bool activate = true)
    {
        Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), RamSize));
        Queue = new VirtQueue(size <= 256 ? (ushort)256 : SplitRingLayout.MaxQueueSize);
        Driver = new VirtQueueDriver(Memory, RingArea, size, BufferArea, RamSize - BufferArea.Value, eventIdx);
        Driver.ConfigureDevice(Queue);
        Features = VirtioFeatures.Version1 | (eventIdx ? VirtioFeatures.EventIdx : 0) | (indirect ? VirtioFeatures.IndirectDesc : 0);
        if (activate)
        {
            Assert.Equal(VirtQueueError.None, Queue.Activate(Memory, Features));
        }
    }

    public GuestMemory Memory { get; }
    public VirtQueue Queue { get; }
    public VirtQueueDriver Driver { get; }
    public ulong Features { get; }

    public DescriptorChain PopOk()
    {
        Assert.True(Queue.TryPop(out DescriptorChain chain, out VirtQueueError error), $"pop failed: {error}");
        Assert.Equal(VirtQueueError.None, error);
        return chain;
    }

    public VirtQueueError PopError()
    {
        Assert.False(Queue.TryPop(out _, out VirtQueueError error));
        return error;
    }

    public void Dispose() => Memory.Dispose();
}
