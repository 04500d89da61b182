using Vmm.Core.Memory;
using Vmm.Core.Virtio.Queues;

using Vmm.Testing.Virtio;

namespace Vmm.Core.Tests.Virtio;

/// <summary>Chains and ring configurations a malicious or broken driver could write. Each must end in a precise
/// error with the queue broken (→ DEVICE_NEEDS_RESET), never an exception, hang or access outside guest RAM.</summary>
public sealed class HostileDriverTests
{
    private const ushort N = VirtqDescriptor.FlagNext, W = VirtqDescriptor.FlagWrite, I = VirtqDescriptor.FlagIndirect;

    private static void AssertBroken(QueueFixture f, VirtQueueError expected)
    {
        Assert.Equal(expected, f.PopError());
        Assert.Equal(expected, f.Queue.Error);
        Assert.False(f.Queue.IsActive);
        // Stays broken: a later, well-formed chain is not processed.
        f.Driver.PublishHead(0);
        Assert.Equal(expected, f.PopError());
        Assert.Equal(0, f.Queue.InFlightCount);
    }

    [Fact]
    public void TwoDescriptorLoop_IsChainTooLong()
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(0, new(0x10000, 4, N, 1));
        f.Driver.WriteDescriptor(1, new(0x10000, 4, N, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.ChainTooLong);
    }

    [Fact]
    public void SelfLoop_IsChainTooLong()
    {
        using var f = new QueueFixture(size: 32768);
        f.Driver.WriteDescriptor(7, new(0x10000, 4, N, 7));
        f.Driver.PublishHead(7);
        AssertBroken(f, VirtQueueError.ChainTooLong);
    }

    [Fact]
    public void LoopInsideIndirectTable_IsChainTooLong()
    {
        using var f = new QueueFixture();
        var table = new GuestAddress(0x20000);
        f.Driver.WriteTable(table, [new(0x10000, 4, N, 1), new(0x10000, 4, N, 0)]);
        f.Driver.WriteDescriptor(0, new(table.Value, 32, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.ChainTooLong);
    }

    [Theory]
    [InlineData(QueueFixture.RamSize - 4, 8u)]               // runs off the end of RAM
    [InlineData(QueueFixture.RamSize, 1u)]                   // starts just past RAM
    [InlineData(0xE000_0000UL, 16u)]                         // ECAM / MMIO space
    [InlineData(ulong.MaxValue - 3, 8u)]                     // address + length wraps around 2^64
    public void BufferOutsideGuestRam_IsRefused(ulong address, uint length)
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(0, new(address, length, W, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.BufferOutsideMemory);
    }

    [Fact]
    public void IndirectTableOutsideGuestRam_IsRefused()
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(0, new(QueueFixture.RamSize - 16, 32, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.BufferOutsideMemory);
    }

    [Fact]
    public void TotalLengthAbove4GiB_IsOverflow()
    {
        // 4097 descriptors of 1 MiB each, all aliasing RAM (legal individually), sum > 2^32.
        using var f = new QueueFixture();
        const int count = 4097;
        var table = new GuestAddress(0x20000);
        var descs = new VirtqDescriptor[count];
        for (int i = 0; i < count; i++)
        {
            descs[i] = new VirtqDescriptor(0, (uint)QueueFixture.RamSize, (ushort)(i < count - 1 ? N : 0), (ushort)(i + 1));
        }
        f.Driver.WriteTable(table, descs);
        f.Driver.WriteDescriptor(0, new(table.Value, count * 16, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.TotalLengthOverflow);
    }

    [Fact]
    public void NestedIndirect_IsRefused()
    {
        using var f = new QueueFixture();
        var outer = new GuestAddress(0x20000);
        var inner = new GuestAddress(0x21000);
        f.Driver.WriteTable(inner, [new(0x10000, 4, 0, 0)]);
        f.Driver.WriteTable(outer, [new(inner.Value, 16, I, 0)]);
        f.Driver.WriteDescriptor(0, new(outer.Value, 16, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.IndirectNested);
    }

    [Fact]
    public void IndirectWithNext_IsRefused()
    {
        using var f = new QueueFixture();
        var table = new GuestAddress(0x20000);
        f.Driver.WriteTable(table, [new(0x10000, 4, 0, 0)]);
        f.Driver.WriteDescriptor(0, new(table.Value, 16, I | N, 1));
        f.Driver.WriteDescriptor(1, new(0x10000, 4, W, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.IndirectWithNext);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(17u)]
    [InlineData(8u)]
    public void IndirectTableBadLength_IsRefused(uint length)
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(0, new(0x20000, length, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.IndirectBadLength);
    }

    [Fact]
    public void IndirectNotNegotiated_IsRefused()
    {
        using var f = new QueueFixture(indirect: false);
        f.Driver.WriteTable(new GuestAddress(0x20000), [new(0x10000, 4, 0, 0)]);
        f.Driver.WriteDescriptor(0, new(0x20000, 16, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.IndirectNotNegotiated);
    }

    [Fact]
    public void IndirectNextOutOfTable_IsRefused()
    {
        using var f = new QueueFixture();
        f.Driver.WriteTable(new GuestAddress(0x20000), [new(0x10000, 4, N, 5), new(0x10000, 4, 0, 0)]);
        f.Driver.WriteDescriptor(0, new(0x20000, 32, I, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.NextIndexOutOfRange);
    }

    [Fact]
    public void NextIndexOutOfRange_IsRefused()
    {
        using var f = new QueueFixture(size: 16);
        f.Driver.WriteDescriptor(0, new(0x10000, 4, N, 16));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.NextIndexOutOfRange);
    }

    [Fact]
    public void HeadIndexOutOfRange_IsRefused()
    {
        using var f = new QueueFixture(size: 16);
        f.Driver.PublishHead(16);
        AssertBroken(f, VirtQueueError.HeadIndexOutOfRange);
    }

    [Fact]
    public void ReadableAfterWritable_IsRefused()
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(0, new(0x10000, 4, W | N, 1));
        f.Driver.WriteDescriptor(1, new(0x10010, 4, 0, 0));
        f.Driver.PublishHead(0);
        AssertBroken(f, VirtQueueError.ReadableAfterWritable);
    }

    [Theory]
    [InlineData(17)]        // one more than the queue size
    [InlineData(0x8000)]
    [InlineData(0xFFFF)]    // "behind" the device, i.e. far ahead modulo 2^16
    public void AvailIndexRunningAhead_IsRefused(int availIdx)
    {
        using var f = new QueueFixture(size: 16);
        f.Driver.SetAvailIndex((ushort)availIdx);
        Assert.Equal(VirtQueueError.AvailIndexJump, f.PopError());
        Assert.Equal(VirtQueueError.AvailIndexJump, f.Queue.Error);
    }

    [Fact]
    public void AvailIndexExactlyQueueSizeAhead_IsAccepted()
    {
        using var f = new QueueFixture(size: 4);
        for (ushort i = 0; i < 4; i++)
        {
            f.Driver.WriteDescriptor(i, new(0x10000, 4, W, 0));
            f.Driver.PublishHead(i);
        }
        for (int i = 0; i < 4; i++)
        {
            f.PopOk();
        }
        Assert.Equal(VirtQueueError.None, f.PopError());
    }

    [Fact]
    public void SameHeadOfferedTwiceWhileInFlight_IsRefused()
    {
        using var f = new QueueFixture();
        f.Driver.WriteDescriptor(3, new(0x10000, 4, W, 0));
        f.Driver.PublishHead(3);
        f.Driver.PublishHead(3);
        f.PopOk();
        Assert.Equal(VirtQueueError.HeadAlreadyInFlight, f.PopError());
    }

    [Theory]
    [InlineData(12)]
    [InlineData(3)]
    [InlineData(1000)]
    public void QueueSizeNotPowerOfTwo_FailsActivation(int size)
    {
        using var f = new QueueFixture(size: (ushort)size, activate: false);
        Assert.Equal(VirtQueueError.InvalidSize, f.Queue.Activate(f.Memory, f.Features));
        Assert.Equal(VirtQueueError.InvalidSize, f.PopError());
    }

    [Fact]
    public void QueueSizeZeroOrAboveMax_FailsActivation()
    {
        using var f = new QueueFixture(size: 16, activate: false);
        f.Queue.Size = 0;
        Assert.Equal(VirtQueueError.InvalidSize, f.Queue.Activate(f.Memory, f.Features));
        f.Queue.Size = 512; // device max is 256
        Assert.Equal(VirtQueueError.InvalidSize, f.Queue.Activate(f.Memory, f.Features));
    }

    [Theory]
    [InlineData(0xE000_0000UL, 0x2000UL, 0x3000UL)]          // descriptor table in ECAM space
    [InlineData(0x1000UL, 0xFEC0_0000UL, 0x3000UL)]          // avail ring on the IOAPIC
    [InlineData(0x1000UL, 0x2000UL, QueueFixture.RamSize - 8)] // used ring straddles the end of RAM
    public void RingOutsideGuestRam_FailsActivation(ulong desc, ulong avail, ulong used)
    {
        using var f = new QueueFixture(activate: false);
        f.Queue.DescriptorTable = new GuestAddress(desc);
        f.Queue.AvailRing = new GuestAddress(avail);
        f.Queue.UsedRing = new GuestAddress(used);
        Assert.Equal(VirtQueueError.RingOutsideMemory, f.Queue.Activate(f.Memory, f.Features));
    }

    [Theory]
    [InlineData(0x1008UL, 0x2000UL, 0x3000UL)]
    [InlineData(0x1000UL, 0x2001UL, 0x3000UL)]
    [InlineData(0x1000UL, 0x2000UL, 0x3002UL)]
    public void RingMisaligned_FailsActivation(ulong desc, ulong avail, ulong used)
    {
        using var f = new QueueFixture(activate: false);
        f.Queue.DescriptorTable = new GuestAddress(desc);
        f.Queue.AvailRing = new GuestAddress(avail);
        f.Queue.UsedRing = new GuestAddress(used);
        Assert.Equal(VirtQueueError.RingMisaligned, f.Queue.Activate(f.Memory, f.Features));
    }

    [Fact]
    public void QueueNotReady_IsNotActivated()
    {
        using var f = new QueueFixture(activate: false);
        f.Queue.Ready = false;
        Assert.Equal(VirtQueueError.NotReady, f.Queue.Activate(f.Memory, f.Features));
    }

    [Fact]
    public void AfterResetAndReactivation_QueueWorksAgain()
    {
        using var f = new QueueFixture();
        f.Driver.PublishHead(99);
        Assert.Equal(VirtQueueError.HeadIndexOutOfRange, f.PopError());
        f.Queue.Reset();
        var driver = new VirtQueueDriver(f.Memory, QueueFixture.RingArea, 16, new GuestAddress(0x40000), 0x10000);
        driver.ConfigureDevice(f.Queue);
        Assert.Equal(VirtQueueError.None, f.Queue.Activate(f.Memory, f.Features));
        driver.Submit("ok"u8, 0);
        Assert.Equal(2u, f.PopOk().ReadableLength);
    }

    /// <summary>
    /// Random garbage in every driver-owned structure, rewritten by a second thread while the device pops and walks:
    /// the device must only ever see in-RAM spans, stop in bounded time, and never throw.
    /// </summary>
    [Fact]
    public void RandomRingsRewrittenConcurrently_NeverCrashTheDevice()
    {
        using var f = new QueueFixture(size: 64);
        Span<byte> ram = f.Memory.GetSpan(new GuestAddress(0), QueueFixture.RamSize);
        ulong ramStart;
        unsafe
        {
            // Only the address is taken; nothing is dereferenced.
            ramStart = (ulong)System.Runtime.CompilerServices.Unsafe.AsPointer(ref ram[0]);
        }
        using var stop = new CancellationTokenSource();
        var scribbler = new Thread(() =>
        {
            var rng = new Random(1234);
            Span<byte> rings = f.Memory.GetSpan(QueueFixture.RingArea, VirtQueueDriver.RingAreaSize(64));
            Span<byte> tables = f.Memory.GetSpan(new GuestAddress(0x20000), 0x1000);
            Span<byte> chunk = stackalloc byte[16];
            while (!stop.IsCancellationRequested)
            {
                rng.NextBytes(chunk);
                // Mostly plausible values (small addresses, in-range indices), sometimes wild ones.
                if (rng.Next(4) != 0)
                {
                    BitConverter.TryWriteBytes(chunk, (ulong)rng.Next(0, (int)QueueFixture.RamSize + 0x1000));
                    BitConverter.TryWriteBytes(chunk[8..], (uint)rng.Next(0, 0x2000));
                    chunk[14] = (byte)rng.Next(0, 70);
                    chunk[15] = 0;
                }
                int at = rng.Next(0, rings.Length - 16) & ~1;
                chunk.CopyTo(rings[at..]);
                chunk.CopyTo(tables[(rng.Next(0, 256) * 16)..]);
            }
        });
        scribbler.Start();
        int chains = 0, errors = 0;
        long walked = 0;
        var deadline = DateTime.UtcNow.AddSeconds(2);
        while (DateTime.UtcNow < deadline)
        {
            if (f.Queue.TryPop(out DescriptorChain chain, out VirtQueueError error))
            {
                chains++;
                foreach (DescriptorChain.Segment s in chain.Segments)
                {
                    if (!s.Span.IsEmpty)
                    {
                        // Every span handed out lies inside guest RAM.
                        ulong p;
                        unsafe
                        {
                            // Only the address is taken; nothing is dereferenced.
                            p = (ulong)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s.Span[0]);
                        }
                        Assert.InRange(p, ramStart, ramStart + QueueFixture.RamSize - (ulong)s.Span.Length);
                    }
                    walked++;
                }
                ChainWriter w = chain.CreateWriter();
                w.Skip(uint.MaxValue);
                chain.Complete(Math.Min(w.BytesWritten, chain.WritableLength));
            }
            else if (error != VirtQueueError.None)
            {
                errors++;
                f.Queue.Reset();
                Assert.Equal(VirtQueueError.None, f.Queue.Activate(f.Memory, f.Features));
            }
        }
        stop.Cancel();
        scribbler.Join();
        Assert.True(errors > 0, "the garbage should have been detected at least once");
        Assert.True(chains + errors > 100, $"device made progress ({chains} chains, {errors} errors, {walked} segments)");
    }

    // A driver that enlarges a writable buffer after handing the chain over: the device keeps to the pop-time
    // length (what the driver offered when it published the chain) and completes it without an exception.
    private static (QueueFixture Fixture, DescriptorChain Chain, GuestAddress Buffer) PopThenEnlarge()
    {
        var f = new QueueFixture();
        var buffer = new GuestAddress(0x40000);
        f.Memory.GetSpan(buffer, 256).Fill(0xEE);
        f.Driver.WriteDescriptor(3, new(buffer.Value, 8, N | W, 4));
        f.Driver.WriteDescriptor(4, new(buffer.Value + 8, 8, W, 0));
        f.Driver.PublishHead(3);
        DescriptorChain chain = f.PopOk();
        Assert.Equal(16u, chain.WritableLength);
        f.Driver.WriteDescriptor(3, new(buffer.Value, 64, N | W, 4));
        f.Driver.WriteDescriptor(4, new(buffer.Value + 64, 128, W, 0));
        return (f, chain, buffer);
    }

    // The hand-written chain is unknown to the driver simulator's bookkeeping: read used ring slot 0 directly.
    private static void AssertFirstUsed(QueueFixture f, uint head, uint length)
    {
        Assert.Equal(1, f.Memory.GetRef<ushort>(f.Driver.UsedRing.Add(2)));
        Assert.Equal(head, f.Memory.GetRef<uint>(f.Driver.UsedRing.Add(4)));
        Assert.Equal(length, f.Memory.GetRef<uint>(f.Driver.UsedRing.Add(8)));
    }

    [Fact]
    public void WritableBufferEnlargedAfterPop_WriterStopsAtPopTimeLength()
    {
        (QueueFixture f, DescriptorChain chain, GuestAddress buffer) = PopThenEnlarge();
        using (f)
        {
            ChainWriter w = chain.CreateWriter();
            Span<byte> first = w.GetSpan();
            Assert.Equal(16, first.Length);
            first.Fill(0x11);
            w.Advance(first.Length);
            Assert.True(w.GetSpan().IsEmpty);
            Assert.Equal(0u, w.Remaining);
            Assert.False(w.Skip(1));
            Assert.Equal(16u, w.BytesWritten);
            Assert.Equal(VirtQueueError.None, f.Queue.AddUsed(chain, w.BytesWritten));
            AssertFirstUsed(f, 3, 16);
            Assert.Equal(0xEE, f.Memory.GetSpan(buffer, 256)[16]); // nothing past the offered 16 bytes
        }
    }

    [Fact]
    public void WritableBufferEnlargedAfterPop_SkipAndSegmentsStopAtPopTimeLength()
    {
        (QueueFixture f, DescriptorChain chain, _) = PopThenEnlarge();
        using (f)
        {
            ChainWriter w = chain.CreateWriter();
            Assert.False(w.Skip(1000));
            Assert.Equal(16u, w.BytesWritten);
            uint total = 0;
            foreach (Span<byte> segment in chain.WritableSegments)
            {
                total += (uint)segment.Length;
            }
            Assert.Equal(16u, total);
            Assert.Equal(VirtQueueError.None, f.Queue.AddUsed(chain, total));
            AssertFirstUsed(f, 3, 16);
        }
    }
}
