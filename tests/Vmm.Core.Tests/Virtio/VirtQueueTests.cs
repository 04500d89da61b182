using System.Text;
using Vmm.Core.Memory;
using Vmm.Core.Virtio.Queues;

using Vmm.Testing.Virtio;

namespace Vmm.Core.Tests.Virtio;

public sealed class VirtQueueTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SubmitPopReadWriteComplete_RoundTrips(bool indirect)
    {
        using var f = new QueueFixture();
        ushort head = f.Driver.Submit("hello device"u8, 64, indirect);

        DescriptorChain chain = f.PopOk();
        Assert.Equal(head, chain.HeadIndex);
        Assert.Equal(12u, chain.ReadableLength);
        Assert.Equal(64u, chain.WritableLength);
        Assert.Equal(1, chain.ReadableCount);
        Assert.Equal(1, chain.WritableCount);

        ChainReader reader = chain.CreateReader();
        Span<byte> request = stackalloc byte[12];
        Assert.True(reader.TryRead(request));
        Assert.Equal("hello device", Encoding.ASCII.GetString(request));
        Assert.Equal(0u, reader.Remaining);

        ChainWriter writer = chain.CreateWriter();
        Assert.True(writer.Write("reply"u8));
        Assert.Equal(VirtQueueError.None, f.Queue.AddUsed(chain, writer.BytesWritten));

        Assert.True(f.Driver.TryTakeUsed(out DriverCompletion done));
        Assert.Equal(head, done.Head);
        Assert.Equal(5u, done.WrittenLength);
        Assert.Equal("reply", Encoding.ASCII.GetString(f.Driver.GetResponse(done)));
        f.Driver.Release(done);
        Assert.Equal(0, f.Queue.InFlightCount);
        Assert.False(f.Queue.TryPop(out _, out VirtQueueError none));
        Assert.Equal(VirtQueueError.None, none);
    }

    [Fact]
    public void ReaderAndWriter_CrossSegmentBoundaries()
    {
        using var f = new QueueFixture();
        GuestAddress r1 = f.Driver.AllocateBuffer(3), r2 = f.Driver.AllocateBuffer(5);
        GuestAddress w1 = f.Driver.AllocateBuffer(2), w2 = f.Driver.AllocateBuffer(10);
        f.Memory.WriteBytes(r1, "abc"u8);
        f.Memory.WriteBytes(r2, "defgh"u8);
        f.Driver.AddChain([new(r1, 3, false), new(r2, 5, false), new(w1, 2, true), new(w2, 10, true)]);

        DescriptorChain chain = f.PopOk();
        Assert.Equal(8u, chain.ReadableLength);
        Assert.Equal(12u, chain.WritableLength);
        ChainReader reader = chain.CreateReader();
        Assert.True(reader.TryRead(out uint first4));
        Assert.Equal(BitConverter.ToUInt32("abcd"u8), first4);
        Assert.Equal("efgh", Encoding.ASCII.GetString(reader.ReadSpan(100)));
        Assert.True(reader.ReadSpan().IsEmpty);

        ChainWriter writer = chain.CreateWriter();
        Assert.True(writer.Write(0x11223344u));
        Assert.False(writer.Write(new byte[9]));   // only 8 left: refused without writing
        Assert.Equal(4u, writer.BytesWritten);
        Assert.Equal(new byte[] { 0x44, 0x33 }, f.Memory.GetSpan(w1, 2).ToArray());
        Assert.Equal(new byte[] { 0x22, 0x11 }, f.Memory.GetSpan(w2, 2).ToArray());
    }

    [Fact]
    public void Segments_AreSpansOverGuestMemory_NotCopies()
    {
        using var f = new QueueFixture();
        GuestAddress w = f.Driver.AllocateBuffer(8);
        f.Driver.AddChain([new(w, 8, true)]);
        DescriptorChain chain = f.PopOk();
        int count = 0;
        foreach (Span<byte> s in chain.WritableSegments)
        {
            s.Fill(0x5A);
            count++;
        }
        Assert.Equal(1, count);
        Assert.All(f.Memory.GetSpan(w, 8).ToArray(), b => Assert.Equal(0x5A, b));
        foreach (DescriptorChain.Segment s in chain.Segments)
        {
            Assert.Equal(w, s.Address);
            Assert.True(s.IsWritable);
        }
    }

    [Fact]
    public void StoredChain_CanBeCompletedLater_OutOfOrder()
    {
        using var f = new QueueFixture();
        ushort h1 = f.Driver.Submit(default, 16);
        ushort h2 = f.Driver.Submit(default, 16);
        DescriptorChain[] held = [f.PopOk(), f.PopOk()];
        Assert.Equal(2, f.Queue.InFlightCount);

        // Later, complete the second first, through a writer made from the stored handle.
        ChainWriter w = held[1].CreateWriter();
        w.Write("late"u8);
        Assert.Equal(VirtQueueError.None, held[1].Complete(w.BytesWritten));
        Assert.Equal(VirtQueueError.None, held[0].Complete(0));
        // Completing twice is refused.
        Assert.Equal(VirtQueueError.StaleChain, held[0].Complete(0));

        Assert.True(f.Driver.TryTakeUsed(out DriverCompletion c1));
        Assert.True(f.Driver.TryTakeUsed(out DriverCompletion c2));
        Assert.Equal((h2, 4u), (c1.Head, c1.WrittenLength));
        Assert.Equal((h1, 0u), (c2.Head, c2.WrittenLength));
    }

    [Fact]
    public void ChainPoppedBeforeReset_IsStale()
    {
        using var f = new QueueFixture();
        f.Driver.Submit(default, 16);
        DescriptorChain chain = f.PopOk();
        f.Queue.Reset();
        Assert.False(chain.IsValid);
        Assert.Equal(VirtQueueError.StaleChain, chain.Complete(0));
        ChainWriter w = chain.CreateWriter();
        Assert.True(w.GetSpan().IsEmpty);
        Assert.Equal(VirtQueueError.StaleChain, w.Error);
    }

    [Fact]
    public void AddUsed_MoreThanWritable_IsClampedToTheChain()
    {
        using var f = new QueueFixture();
        f.Driver.Submit("x"u8, 4);
        DescriptorChain chain = f.PopOk();
        Assert.Equal(VirtQueueError.None, f.Queue.AddUsed(chain, 5));
        Assert.True(f.Driver.TryTakeUsed(out DriverCompletion done));
        Assert.Equal(4u, done.WrittenLength);
    }

    [Fact]
    public void RingWrapsAround_ManyTimes()
    {
        using var f = new QueueFixture(size: 4);
        for (int i = 0; i < 70_000; i++)   // more than 2^16 so the free-running indices wrap
        {
            f.Driver.Submit(default, 4);
            DescriptorChain c = f.PopOk();
            Assert.Equal(VirtQueueError.None, c.Complete(4));
            Assert.True(f.Driver.TryTakeUsed(out DriverCompletion d));
            f.Driver.Release(d);
        }
        Assert.Equal(unchecked((ushort)70_000), f.Queue.NextUsedIndex);
    }
}
