using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Fuzz.Targets;

/// <summary>
/// The split virtqueue against a hostile driver. The input configures one queue (size, ring addresses, EVENT_IDX,
/// INDIRECT_DESC) over a small guest RAM image of two regions with a hole between them, then runs driver and device
/// operations in any order: descriptor and indirect-table writes, avail publishes and index jumps, raw memory
/// rewrites between pops, pops, reads and writes through popped chains (also after their descriptors changed),
/// completions (double and stale ones too), notification suppression, reset and re-activation.
/// <para>Findings: any exception; the in-flight count disagreeing with the chains the harness holds; a writer or
/// writable-segment walk handing out more than the pop-time writable length; a completed chain accepted twice.</para>
/// </summary>
public static class QueueTarget
{
    private const ulong LowSize = 0x10000;
    private static readonly GuestAddress HighStart = new(0x20000);
    private const ulong HighSize = 0x1000;
    private const int MaxHeld = 64;
    private const ushort MaxQueueSize = 256;

    // One image per process, cleared per input: mapping fresh RAM for every run would dominate the run time.
    private static readonly GuestMemory Memory =
        GuestMemory.CreateAnonymous((new GuestAddress(0), LowSize), (HighStart, HighSize));

    public static void Run(ReadOnlySpan<byte> data)
    {
        foreach (GuestRegion r in Memory.Regions)
        {
            Memory.GetSpan(r.Start, r.Size).Clear();
        }
        var input = new FuzzInput(data);
        var queue = new VirtQueue(MaxQueueSize);
        byte flags = input.U8();
        ulong features = VirtioFeatures.Version1
            | ((flags & 1) != 0 ? VirtioFeatures.EventIdx : 0)
            | ((flags & 2) != 0 ? VirtioFeatures.IndirectDesc : 0);
        Configure(queue, ref input, flags);
        queue.Ready = (flags & 16) == 0;
        var active = Activated(queue, features);

        var held = new DescriptorChain[MaxHeld];
        int heldCount = 0;
        ushort availIdx = 0;
        Span<byte> scratch = stackalloc byte[256];
        for (int step = 0; step < 512 && !input.IsEmpty; step++)
        {
            switch (input.U8() % 14)
            {
                case 0: // raw guest memory rewrite (rings, descriptors, buffers: anything)
                {
                    ulong address = Address(ref input);
                    ReadOnlySpan<byte> bytes = input.Bytes(input.U8());
                    if (Memory.TryGetSpan(new GuestAddress(address), (ulong)bytes.Length, out Span<byte> target))
                    {
                        bytes.CopyTo(target);
                    }
                    break;
                }
                case 1: // one descriptor of the main table
                {
                    ushort index = input.U16();
                    var d = new VirtqDescriptor(Address(ref input), input.U32(), input.U16(), input.U16());
                    WriteDescriptor(queue.DescriptorTable.Value + 16UL * (ulong)(index % Math.Max(1, (int)queue.Size)), d);
                    break;
                }
                case 2: // publish a head
                {
                    ushort raw = input.U16();
                    ushort head = (raw & 0x8000) != 0 ? raw : (ushort)(raw % Math.Max(1, (int)queue.Size));
                    ulong slot = queue.AvailRing.Value + 4 + 2UL * (ulong)(availIdx % Math.Max(1, (int)queue.Size));
                    Memory.TryWrite(new GuestAddress(slot), head);
                    availIdx++;
                    Memory.TryWrite(new GuestAddress(queue.AvailRing.Value + 2), availIdx);
                    break;
                }
                case 3: // avail index jump (or rewind)
                    availIdx = input.U16();
                    Memory.TryWrite(new GuestAddress(queue.AvailRing.Value + 2), availIdx);
                    break;
                case 4:
                    Pop(queue, held, ref heldCount);
                    break;
                case 5: // complete a held chain with any length
                {
                    if (heldCount == 0)
                    {
                        break;
                    }
                    int k = input.U8() % heldCount;
                    VirtQueueError e = queue.AddUsed(held[k], input.U32());
                    if (e == VirtQueueError.None)
                    {
                        CheckPublished(queue, active, held[k]);
                    }
                    if (e != VirtQueueError.None && e != VirtQueueError.StaleChain)
                    {
                        throw new FuzzInvariantException($"AddUsed returned {e}");
                    }
                    if (e == VirtQueueError.StaleChain && held[k].IsValid)
                    {
                        throw new FuzzInvariantException("a held, valid chain was refused as stale");
                    }
                    held[k] = held[--heldCount];
                    break;
                }
                case 6:
                    if (heldCount > 0)
                    {
                        ReadChain(held[input.U8() % heldCount], ref input, scratch);
                    }
                    break;
                case 7:
                    if (heldCount > 0)
                    {
                        WriteChain(held[input.U8() % heldCount], ref input, scratch);
                    }
                    break;
                case 8:
                    switch (input.U8() % 3)
                    {
                        case 0: queue.DisableNotifications(); break;
                        case 1: queue.EnableNotifications(); break;
                        default: queue.ShouldNotify(); break;
                    }
                    break;
                case 9:
                    queue.Reset();
                    break;
                case 10:
                    active = Activated(queue, features);
                    availIdx = 0;
                    break;
                case 11:
                    Configure(queue, ref input, input.U8());
                    break;
                case 12: // double completion: the second must be refused
                {
                    if (heldCount == 0)
                    {
                        break;
                    }
                    int k = input.U8() % heldCount;
                    DescriptorChain c = held[k];
                    held[k] = held[--heldCount];
                    if (queue.AddUsed(c, input.U32()) == VirtQueueError.None && queue.AddUsed(c, 0) != VirtQueueError.StaleChain)
                    {
                        throw new FuzzInvariantException("a chain was completed twice");
                    }
                    break;
                }
                case 13: // an indirect table anywhere
                {
                    ulong address = Address(ref input);
                    int count = input.U8() % 17;
                    for (int i = 0; i < count; i++)
                    {
                        WriteDescriptor(address + 16UL * (ulong)i, new VirtqDescriptor(Address(ref input), input.U32(), input.U16(), input.U16()));
                    }
                    break;
                }
            }
            CheckInFlight(queue, held, heldCount);
        }
        // Drain: everything still held is completed, as a device does on the way to a reset.
        for (int i = 0; i < heldCount; i++)
        {
            queue.AddUsed(held[i], 0);
        }
        if (queue.IsActive && queue.InFlightCount != 0)
        {
            throw new FuzzInvariantException($"{queue.InFlightCount} chains in flight after all were completed");
        }
        queue.Reset();
    }

    /// <summary>Activates the queue; returns the used ring and size it validated (later reconfiguration writes do not
    /// move an active queue), or (0, 0) when activation failed.</summary>
    private static (ulong UsedRing, ushort Size) Activated(VirtQueue queue, ulong features) =>
        queue.Activate(Memory, features) == VirtQueueError.None ? (queue.UsedRing.Value, queue.Size) : (0, 0);

    /// <summary>Right after a completion the used ring shows it: idx = the device's count, the last element = the
    /// chain's head and a length within what the chain offered at pop time.</summary>
    private static void CheckPublished(VirtQueue queue, (ulong UsedRing, ushort Size) active, in DescriptorChain chain)
    {
        ushort index = Memory.Read<ushort>(new GuestAddress(active.UsedRing + 2));
        ulong slot = active.UsedRing + 4 + 8UL * (ulong)((index - 1) & (active.Size - 1));
        uint id = Memory.Read<uint>(new GuestAddress(slot));
        uint length = Memory.Read<uint>(new GuestAddress(slot + 4));
        if (index != queue.NextUsedIndex || id != chain.HeadIndex || length > chain.WritableLength)
        {
            throw new FuzzInvariantException(
                $"used ring shows idx {index} id {id} len {length}; the device completed head {chain.HeadIndex} (writable {chain.WritableLength}) as entry {queue.NextUsedIndex}");
        }
    }

    /// <summary>Queue size and ring addresses. Addresses are aligned unless flag 8 asks for raw ones.</summary>
    private static void Configure(VirtQueue queue, ref FuzzInput input, byte flags)
    {
        queue.Size = (flags & 4) != 0 ? input.U16() : (ushort)(1 << (input.U8() % 9));
        bool raw = (flags & 8) != 0;
        queue.DescriptorTable = new GuestAddress(raw ? Address(ref input) : Address(ref input) & ~15UL);
        queue.AvailRing = new GuestAddress(raw ? Address(ref input) : Address(ref input) & ~1UL);
        queue.UsedRing = new GuestAddress(raw ? Address(ref input) : Address(ref input) & ~3UL);
    }

    /// <summary>A guest address: mostly inside one of the two RAM regions; with the top bit of the u32 set, any
    /// 64-bit value (the hole, MMIO space, wrap-around).</summary>
    private static ulong Address(ref FuzzInput input)
    {
        uint v = input.U32();
        if ((v & 0x8000_0000) != 0)
        {
            return input.U64();
        }
        ulong offset = v % (LowSize + HighSize);
        return offset < LowSize ? offset : HighStart.Value + (offset - LowSize);
    }

    private static void WriteDescriptor(ulong address, VirtqDescriptor d)
    {
        if (Memory.TryGetSpan(new GuestAddress(address), VirtqDescriptor.Size, out Span<byte> target))
        {
            d.Write(target);
        }
    }

    private static void Pop(VirtQueue queue, DescriptorChain[] held, ref int heldCount)
    {
        bool wasActive = queue.IsActive;
        bool popped = queue.TryPop(out DescriptorChain chain, out VirtQueueError error);
        FuzzTrace.Write($"pop: {popped} {error} head {chain.HeadIndex} readable {chain.ReadableLength} writable {chain.WritableLength}");
        if (popped)
        {
            if (!wasActive || error != VirtQueueError.None || !chain.IsValid)
            {
                throw new FuzzInvariantException($"TryPop succeeded on a queue that was {(wasActive ? "active" : "inactive")} ({error})");
            }
            if (heldCount == held.Length)
            {
                queue.AddUsed(held[0], 0);
                held[0] = held[--heldCount];
            }
            held[heldCount++] = chain;
        }
        else if (error != queue.Error || (error != VirtQueueError.None && queue.IsActive))
        {
            throw new FuzzInvariantException($"TryPop reported {error} but the queue says {queue.Error}");
        }
    }

    private static void ReadChain(in DescriptorChain chain, ref FuzzInput input, scoped Span<byte> scratch)
    {
        switch (input.U8() % 4)
        {
            case 0:
                foreach (DescriptorChain.Segment s in chain.Segments)
                {
                    _ = s.Span.Length;
                }
                break;
            case 1:
                foreach (ReadOnlySpan<byte> s in chain.ReadableSegments)
                {
                    _ = s.Length;
                }
                break;
            default:
            {
                ChainReader reader = chain.CreateReader();
                int steps = input.U8() % 8;
                for (int i = 0; i < steps; i++)
                {
                    int n = input.U8();
                    switch (input.U8() % 4)
                    {
                        case 0: reader.TryRead(scratch[..n]); break;
                        case 1: reader.Read(scratch[..n]); break;
                        case 2: reader.Skip(input.U32()); break;
                        default: reader.ReadSpan(n); break;
                    }
                }
                break;
            }
        }
    }

    private static void WriteChain(in DescriptorChain chain, ref FuzzInput input, scoped Span<byte> scratch)
    {
        if ((input.U8() & 1) != 0)
        {
            uint total = 0;
            foreach (Span<byte> s in chain.WritableSegments)
            {
                s.Fill(0xA5);
                total += (uint)s.Length;
            }
            if (total > chain.WritableLength)
            {
                throw new FuzzInvariantException($"writable segments gave {total} bytes, the chain had {chain.WritableLength} at pop time");
            }
            return;
        }
        ChainWriter writer = chain.CreateWriter();
        int steps = input.U8() % 8;
        for (int i = 0; i < steps; i++)
        {
            int n = input.U8();
            switch (input.U8() % 3)
            {
                case 0:
                    scratch[..n].Fill(0x5A);
                    writer.Write(scratch[..n]);
                    break;
                case 1:
                {
                    Span<byte> span = writer.GetSpan();
                    int k = Math.Min(n, span.Length);
                    span[..k].Fill(0x3C);
                    writer.Advance(k);
                    break;
                }
                default:
                    writer.Skip(input.U32());
                    break;
            }
            if (writer.BytesWritten > chain.WritableLength)
            {
                throw new FuzzInvariantException($"the writer wrote {writer.BytesWritten} bytes, the chain had {chain.WritableLength} at pop time");
            }
        }
    }

    private static void CheckInFlight(VirtQueue queue, DescriptorChain[] held, int heldCount)
    {
        int valid = 0;
        for (int i = 0; i < heldCount; i++)
        {
            if (held[i].IsValid)
            {
                valid++;
            }
        }
        if (queue.InFlightCount != valid)
        {
            throw new FuzzInvariantException($"queue counts {queue.InFlightCount} chains in flight, the driver holds {valid}");
        }
    }
}
