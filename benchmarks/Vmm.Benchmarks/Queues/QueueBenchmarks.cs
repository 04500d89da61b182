using BenchmarkDotNet.Attributes;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

using Vmm.Testing.Virtio;

namespace Vmm.Benchmarks.Queues;

/// <summary>Split-virtqueue hot paths over real (anonymous-mmap) guest memory. Every benchmark must report
/// 0 B allocated per operation.</summary>
[MemoryDiagnoser]
public class QueueBenchmarks
{
    private GuestMemory _memory = null!;
    private VirtQueue _queue = null!;
    private VirtQueueDriver _driver = null!;
    private DriverBuffer[] _buffers = null!;
    private DescriptorChain _heldChain;
    private byte[] _header = new byte[16];

    [GlobalSetup]
    public void Setup()
    {
        _memory = GuestMemory.CreateAnonymous((new GuestAddress(0), 4UL << 20));
        _queue = new VirtQueue(256);
        _driver = new VirtQueueDriver(_memory, new GuestAddress(0x10000), 256, new GuestAddress(0x100000), 0x100000, eventIdx: true);
        _driver.ConfigureDevice(_queue);
        if (_queue.Activate(_memory, VirtioFeatures.Version1 | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc) != VirtQueueError.None)
        {
            throw new InvalidOperationException("queue activation failed");
        }
        // A typical request: 16-byte header + 4 KiB payload in, 16-byte status + 4 KiB data out.
        _buffers =
        [
            new(_driver.AllocateBuffer(16), 16, false),
            new(_driver.AllocateBuffer(4096), 4096, false),
            new(_driver.AllocateBuffer(16), 16, true),
            new(_driver.AllocateBuffer(4096), 4096, true),
        ];
        // One chain held in flight for the walk benchmarks.
        _driver.AddChain(_buffers);
        if (!_queue.TryPop(out _heldChain, out _))
        {
            throw new InvalidOperationException("pop failed");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _memory.Dispose();

    /// <summary>Walks the 4 segments of a chain (re-validating each descriptor) and sums their lengths.</summary>
    [Benchmark]
    public int ChainWalk()
    {
        int total = 0;
        foreach (DescriptorChain.Segment s in _heldChain.Segments)
        {
            total += s.Span.Length;
        }
        return total;
    }

    /// <summary>Reads a 16-byte header by copy and writes a 16-byte status through the chain reader/writer.</summary>
    [Benchmark]
    public uint ReadHeaderWriteStatus()
    {
        ChainReader r = _heldChain.CreateReader();
        r.TryRead(_header);
        ChainWriter w = _heldChain.CreateWriter();
        w.Write(_header);
        return w.BytesWritten;
    }

    /// <summary>Device side only: pop (with full chain validation) + add_used + ShouldNotify; the simulated
    /// driver's publish and reap are included to keep the ring flowing.</summary>
    [Benchmark]
    public uint PopAddUsedRoundTrip()
    {
        _driver.AddChain(_buffers);
        _queue.TryPop(out DescriptorChain chain, out _);
        _queue.AddUsed(chain, 16);
        _queue.ShouldNotify();
        _driver.TryTakeUsed(out DriverCompletion c);
        return c.WrittenLength;
    }

    /// <summary>The same round trip with the request in an indirect table.</summary>
    [Benchmark]
    public uint PopAddUsedRoundTripIndirect()
    {
        _driver.AddChain(_buffers, indirect: true);
        _queue.TryPop(out DescriptorChain chain, out _);
        _queue.AddUsed(chain, 16);
        _queue.ShouldNotify();
        _driver.TryTakeUsed(out DriverCompletion c);
        return c.WrittenLength;
    }
}
