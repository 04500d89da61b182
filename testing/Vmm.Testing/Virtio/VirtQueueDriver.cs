using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Memory;

using Vmm.Core.Virtio.Queues;

namespace Vmm.Testing.Virtio;

/// <summary>A buffer the driver puts in a chain: guest-physical address, length, and direction.</summary>
/// <param name="DeviceWritable">True for device → driver (response) buffers.</param>
public readonly record struct DriverBuffer(GuestAddress Address, uint Length, bool DeviceWritable);

/// <summary>A chain the device returned, as the simulated driver sees it. For chains made by
/// <see cref="VirtQueueDriver.Submit"/>, <see cref="ResponseAddress"/>/<see cref="ResponseCapacity"/> locate the
/// device-writable buffer the driver allocated.</summary>
public readonly record struct DriverCompletion(ushort Head, uint WrittenLength, GuestAddress ResponseAddress, uint ResponseCapacity);

/// <summary>
/// The driver side of a split virtqueue, in C#: it lays out the rings in a <see cref="GuestMemory"/>, allocates
/// data buffers there, builds descriptor chains exactly as a guest driver would (direct or indirect), publishes them
/// with release semantics, honours the device's notification suppression when kicking, and reaps used entries.
/// It also writes raw, malformed structures (<see cref="WriteDescriptor"/>, <see cref="PublishHead"/>,
/// <see cref="SetAvailIndex"/>, ...) for hostile-driver tests. Used by tests, benchmarks and the virtio-media
/// embedded testbed.
/// <para>Not thread-safe: one thread plays the driver. After setup nothing allocates on the
/// submit/kick/reap path (the buffer allocator's bookkeeping grows only to its high-water mark).</para>
/// <example><code>
/// var driver = new VirtQueueDriver(memory, ringArea, 256, bufferArea, 1 &lt;&lt; 20, kick: queueEvent);
/// driver.ConfigureDevice(deviceQueue);            // what the transport would do on the driver's behalf
/// ushort head = driver.Submit(requestBytes, responseCapacity: 4096);
/// driver.Kick();
/// if (driver.TryTakeUsed(out DriverCompletion c)) { var reply = driver.GetResponse(c); ...; driver.Release(c); }
/// </code></example>
/// </summary>
public sealed class VirtQueueDriver
{
    private const ushort NoHead = ushort.MaxValue;
    private const uint BufferAlignment = 16;

    private readonly ushort[] _nextFree;
    private readonly ushort[] _chainLength;
    private readonly bool[] _outstanding;
    private readonly GuestAddress[] _indirectTable;
    private readonly GuestAddress[] _requestBuffer;
    private readonly GuestAddress[] _responseBuffer;
    private readonly uint[] _responseCapacity;
    private readonly BufferAllocator _allocator;
    private readonly EventFd? _kick;
    private ushort _freeHead;
    private ushort _availIdx;
    private ushort _lastKickAvail;
    private ushort _lastUsed;

    /// <param name="memory">Guest RAM holding both the rings and the buffers.</param>
    /// <param name="ringArea">Where the rings go (4 KiB-aligned is conventional); needs
    /// <see cref="RingAreaSize"/> bytes.</param>
    /// <param name="size">Queue size (the simulator accepts any value, including invalid ones, so that the device's
    /// validation can be tested).</param>
    /// <param name="bufferArea">Region from which <see cref="AllocateBuffer"/> and <see cref="Submit"/> allocate.</param>
    /// <param name="eventIdx">Whether the driver negotiated VIRTIO_F_EVENT_IDX (must match the device's view).</param>
    /// <param name="kick">The queue's notification eventfd, signalled by <see cref="Kick"/>; null to only report.</param>
    public VirtQueueDriver(GuestMemory memory, GuestAddress ringArea, ushort size, GuestAddress bufferArea,
        ulong bufferAreaSize, bool eventIdx = false, EventFd? kick = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (size == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size));
        }
        Memory = memory;
        Size = size;
        EventIdx = eventIdx;
        _kick = kick;
        DescriptorTable = ringArea;
        AvailRing = ringArea.Add(SplitRingLayout.DescriptorTableSize(size));
        UsedRing = new GuestAddress((AvailRing.Value + SplitRingLayout.AvailRingSize(size) + 3) & ~3UL);
        if (!memory.IsValidRange(ringArea, RingAreaSize(size)))
        {
            throw new ArgumentException("ring area is outside guest RAM", nameof(ringArea));
        }
        memory.GetSpan(ringArea, RingAreaSize(size)).Clear();
        _allocator = new BufferAllocator(memory, bufferArea, bufferAreaSize);
        _nextFree = new ushort[size];
        _chainLength = new ushort[size];
        _outstanding = new bool[size];
        _indirectTable = new GuestAddress[size];
        _requestBuffer = new GuestAddress[size];
        _responseBuffer = new GuestAddress[size];
        _responseCapacity = new uint[size];
        for (int i = 0; i < size; i++)
        {
            _nextFree[i] = (ushort)(i + 1 < size ? i + 1 : NoHead);
        }
        _freeHead = 0;
        FreeDescriptors = size;
    }

    /// <summary>Bytes needed at <c>ringArea</c> for a queue of <paramref name="size"/>.</summary>
    public static ulong RingAreaSize(ushort size) =>
        ((SplitRingLayout.DescriptorTableSize(size) + SplitRingLayout.AvailRingSize(size) + 3) & ~3UL)
        + SplitRingLayout.UsedRingSize(size);

    public GuestMemory Memory { get; }
    public ushort Size { get; }
    public bool EventIdx { get; }
    public GuestAddress DescriptorTable { get; }
    public GuestAddress AvailRing { get; }
    public GuestAddress UsedRing { get; }

    /// <summary>Descriptors in the main table not currently owned by the device.</summary>
    public int FreeDescriptors { get; private set; }

    /// <summary>The avail index the driver has published.</summary>
    public ushort AvailIndex => _availIdx;

    /// <summary>The device's used index as currently in memory (acquire read).</summary>
    public ushort UsedIndex => Volatile.Read(ref Memory.GetRef<ushort>(UsedRing.Add(2)));

    /// <summary>Chains the device has not returned yet.</summary>
    public int Outstanding { get; private set; }

    /// <summary>Programs <paramref name="queue"/> with this driver's size and ring addresses and marks it ready,
    /// as the transport does when the driver writes the common configuration.</summary>
    public void ConfigureDevice(VirtQueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        queue.Size = Size;
        queue.DescriptorTable = DescriptorTable;
        queue.AvailRing = AvailRing;
        queue.UsedRing = UsedRing;
        queue.Ready = true;
    }

    /// <summary>Allocates a 16-byte aligned buffer in the buffer area.</summary>
    /// <exception cref="InvalidOperationException">The buffer area is exhausted.</exception>
    public GuestAddress AllocateBuffer(uint length) =>
        _allocator.TryAllocate(length, out GuestAddress a) ? a : throw new InvalidOperationException("simulated driver buffer area exhausted");

    public bool TryAllocateBuffer(uint length, out GuestAddress address) => _allocator.TryAllocate(length, out address);

    public void FreeBuffer(GuestAddress address) => _allocator.Free(address);

    /// <summary>
    /// Builds a chain from <paramref name="buffers"/> (readable ones must come first, as a correct driver does) and
    /// publishes it. With <paramref name="indirect"/> the buffers go into an indirect table allocated in the buffer
    /// area and the chain takes one main descriptor. Returns the head index.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not enough free descriptors or buffer space.</exception>
    public ushort AddChain(ReadOnlySpan<DriverBuffer> buffers, bool indirect = false)
    {
        if (buffers.IsEmpty)
        {
            throw new ArgumentException("a chain needs at least one buffer", nameof(buffers));
        }
        ushort head;
        if (indirect)
        {
            head = TakeDescriptors(1);
            GuestAddress table = AllocateBuffer((uint)(buffers.Length * VirtqDescriptor.Size));
            Span<byte> tableSpan = Memory.GetSpan(table, (ulong)buffers.Length * VirtqDescriptor.Size);
            for (int i = 0; i < buffers.Length; i++)
            {
                DriverBuffer b = buffers[i];
                bool last = i == buffers.Length - 1;
                new VirtqDescriptor(b.Address.Value, b.Length, Flags(b.DeviceWritable, !last), (ushort)(last ? 0 : i + 1))
                    .Write(tableSpan.Slice(i * VirtqDescriptor.Size, VirtqDescriptor.Size));
            }
            WriteDescriptor(head, new VirtqDescriptor(table.Value, (uint)(buffers.Length * VirtqDescriptor.Size), VirtqDescriptor.FlagIndirect, 0));
            _indirectTable[head] = table;
            _chainLength[head] = 1;
        }
        else
        {
            head = TakeDescriptors(buffers.Length);
            ushort index = head;
            for (int i = 0; i < buffers.Length; i++)
            {
                DriverBuffer b = buffers[i];
                bool last = i == buffers.Length - 1;
                ushort next = last ? (ushort)0 : _nextFree[index];
                WriteDescriptor(index, new VirtqDescriptor(b.Address.Value, b.Length, Flags(b.DeviceWritable, !last), next));
                if (!last)
                {
                    index = next;
                }
            }
            _indirectTable[head] = default;
            _chainLength[head] = (ushort)buffers.Length;
        }
        _requestBuffer[head] = default;
        _responseBuffer[head] = default;
        _responseCapacity[head] = 0;
        _outstanding[head] = true;
        Outstanding++;
        PublishHead(head);
        return head;
    }

    /// <summary>
    /// The common request/response shape: copies <paramref name="request"/> into a fresh device-readable buffer and
    /// adds a device-writable buffer of <paramref name="responseCapacity"/> bytes (either may be empty), builds the
    /// chain and publishes it. The buffers stay allocated until <see cref="Release"/>.
    /// </summary>
    public ushort Submit(ReadOnlySpan<byte> request, uint responseCapacity, bool indirect = false)
    {
        Span<DriverBuffer> buffers = stackalloc DriverBuffer[2];
        int n = 0;
        GuestAddress requestAddress = default, responseAddress = default;
        if (!request.IsEmpty)
        {
            requestAddress = AllocateBuffer((uint)request.Length);
            Memory.WriteBytes(requestAddress, request);
            buffers[n++] = new DriverBuffer(requestAddress, (uint)request.Length, false);
        }
        if (responseCapacity > 0)
        {
            responseAddress = AllocateBuffer(responseCapacity);
            buffers[n++] = new DriverBuffer(responseAddress, responseCapacity, true);
        }
        ushort head = AddChain(buffers[..n], indirect);
        _requestBuffer[head] = requestAddress;
        _responseBuffer[head] = responseAddress;
        _responseCapacity[head] = responseCapacity;
        return head;
    }

    /// <summary>Whether the device currently asks to be notified about what was published since the last kick
    /// (used.flags NO_NOTIFY, or EVENT_IDX avail_event), read after a full fence as a driver must.</summary>
    public bool NeedsKick()
    {
        Interlocked.MemoryBarrier();
        if (EventIdx)
        {
            ushort availEvent = Volatile.Read(ref Memory.GetRef<ushort>(UsedRing.Add(4 + 8UL * Size)));
            return SplitRingLayout.NeedsEvent(availEvent, _availIdx, _lastKickAvail);
        }
        return (Volatile.Read(ref Memory.GetRef<ushort>(UsedRing)) & SplitRingLayout.UsedFlagNoNotify) == 0;
    }

    /// <summary>Notifies the device (signals the kick eventfd) when <see cref="NeedsKick"/>; returns whether it did.</summary>
    public bool Kick()
    {
        bool needed = NeedsKick();
        _lastKickAvail = _availIdx;
        if (needed)
        {
            _kick?.Signal();
        }
        return needed;
    }

    /// <summary>Reaps one used entry, returning its descriptors to the free list. The chain's buffers (for
    /// <see cref="Submit"/>) stay allocated until <see cref="Release"/>.</summary>
    /// <exception cref="InvalidOperationException">The device returned an id it does not own (a device bug).</exception>
    public bool TryTakeUsed(out DriverCompletion completion)
    {
        completion = default;
        ushort usedIdx = UsedIndex;
        if (usedIdx == _lastUsed)
        {
            return false;
        }
        Span<byte> element = Memory.GetSpan(UsedRing.Add(4 + 8UL * (uint)(_lastUsed % Size)), 8);
        uint id = MemoryMarshal.Read<uint>(element);
        uint length = MemoryMarshal.Read<uint>(element[4..]);
        if (id >= Size || !_outstanding[id])
        {
            throw new InvalidOperationException($"device returned descriptor {id}, which it does not own");
        }
        _lastUsed++;
        ushort head = (ushort)id;
        _outstanding[head] = false;
        Outstanding--;
        ReturnDescriptors(head);
        if (EventIdx)
        {
            // Ask for an interrupt on the next used entry (what Linux's virtqueue_enable_cb does).
            Volatile.Write(ref Memory.GetRef<ushort>(AvailRing.Add(4 + 2UL * Size)), _lastUsed);
        }
        completion = new DriverCompletion(head, length, _responseBuffer[head], _responseCapacity[head]);
        return true;
    }

    /// <summary>The bytes the device wrote into a <see cref="Submit"/> chain's response buffer.</summary>
    public Span<byte> GetResponse(in DriverCompletion completion) =>
        completion.ResponseCapacity == 0
            ? default
            : Memory.GetSpan(completion.ResponseAddress, Math.Min(completion.WrittenLength, completion.ResponseCapacity));

    /// <summary>Frees the buffers <see cref="Submit"/> allocated for the completed chain.</summary>
    public void Release(in DriverCompletion completion)
    {
        ushort head = completion.Head;
        if (head >= Size || _outstanding[head])
        {
            return;
        }
        if (_requestBuffer[head].Value != 0)
        {
            _allocator.Free(_requestBuffer[head]);
            _requestBuffer[head] = default;
        }
        if (_responseBuffer[head].Value != 0)
        {
            _allocator.Free(_responseBuffer[head]);
            _responseBuffer[head] = default;
        }
    }

    /// <summary>Asks the device for no interrupts (avail.flags NO_INTERRUPT; with EVENT_IDX used_event is moved
    /// half a ring away).</summary>
    public void DisableInterrupts()
    {
        if (EventIdx)
        {
            Volatile.Write(ref Memory.GetRef<ushort>(AvailRing.Add(4 + 2UL * Size)), (ushort)(_lastUsed - 1 - 0x8000));
        }
        else
        {
            Volatile.Write(ref Memory.GetRef<ushort>(AvailRing), SplitRingLayout.AvailFlagNoInterrupt);
        }
    }

    /// <summary>Asks the device for an interrupt on the next used entry.</summary>
    public void EnableInterrupts()
    {
        if (EventIdx)
        {
            Volatile.Write(ref Memory.GetRef<ushort>(AvailRing.Add(4 + 2UL * Size)), _lastUsed);
        }
        else
        {
            Volatile.Write(ref Memory.GetRef<ushort>(AvailRing), (ushort)0);
        }
    }

    // ---- Raw access for hostile-driver tests: nothing below is validated or tracked. ----

    /// <summary>Writes descriptor <paramref name="index"/> of the main table (any index below <see cref="Size"/>).</summary>
    public void WriteDescriptor(ushort index, VirtqDescriptor descriptor)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Size);
        descriptor.Write(Memory.GetSpan(DescriptorTable.Add(16UL * index), VirtqDescriptor.Size));
    }

    /// <summary>Writes <paramref name="descriptors"/> as a table at <paramref name="address"/> (an indirect table).</summary>
    public void WriteTable(GuestAddress address, ReadOnlySpan<VirtqDescriptor> descriptors)
    {
        Span<byte> span = Memory.GetSpan(address, (ulong)descriptors.Length * VirtqDescriptor.Size);
        for (int i = 0; i < descriptors.Length; i++)
        {
            descriptors[i].Write(span.Slice(i * VirtqDescriptor.Size, VirtqDescriptor.Size));
        }
    }

    /// <summary>Puts <paramref name="head"/> (any value) in the next avail slot and publishes avail idx + 1.</summary>
    public void PublishHead(ushort head)
    {
        Memory.Write(AvailRing.Add(4 + 2UL * (uint)(_availIdx % Size)), head);
        _availIdx++;
        // Release: the slot and the descriptors are visible before the index that publishes them.
        Volatile.Write(ref Memory.GetRef<ushort>(AvailRing.Add(2)), _availIdx);
    }

    /// <summary>Sets avail idx to any value (e.g. far ahead of what was published).</summary>
    public void SetAvailIndex(ushort index)
    {
        _availIdx = index;
        Volatile.Write(ref Memory.GetRef<ushort>(AvailRing.Add(2)), index);
    }

    private static ushort Flags(bool writable, bool hasNext) =>
        (ushort)((writable ? VirtqDescriptor.FlagWrite : 0) | (hasNext ? VirtqDescriptor.FlagNext : 0));

    private ushort TakeDescriptors(int count)
    {
        if (count > FreeDescriptors)
        {
            throw new InvalidOperationException($"simulated driver needs {count} descriptors, {FreeDescriptors} free");
        }
        ushort head = _freeHead;
        ushort last = head;
        for (int i = 1; i < count; i++)
        {
            last = _nextFree[last];
        }
        _freeHead = _nextFree[last];
        FreeDescriptors -= count;
        return head;
    }

    private void ReturnDescriptors(ushort head)
    {
        // Follow the driver's own shadow links, never the (device-writable) table.
        ushort last = head;
        for (int i = 1; i < _chainLength[head]; i++)
        {
            last = _nextFree[last];
        }
        _nextFree[last] = _freeHead;
        _freeHead = head;
        FreeDescriptors += _chainLength[head];
        if (_indirectTable[head].Value != 0)
        {
            _allocator.Free(_indirectTable[head]);
            _indirectTable[head] = default;
        }
    }

    /// <summary>First-fit allocator over the buffer area, 16-byte granularity.</summary>
    private sealed class BufferAllocator
    {
        private readonly List<(ulong Start, ulong Length)> _free = [];
        private readonly Dictionary<ulong, ulong> _allocated = [];

        public BufferAllocator(GuestMemory memory, GuestAddress start, ulong length)
        {
            if (length > 0 && !memory.IsValidRange(start, length))
            {
                throw new ArgumentException("buffer area is outside guest RAM", nameof(start));
            }
            ulong aligned = (start.Value + BufferAlignment - 1) & ~(ulong)(BufferAlignment - 1);
            ulong usable = length > aligned - start.Value ? length - (aligned - start.Value) : 0;
            if (usable >= BufferAlignment)
            {
                _free.Add((aligned, usable & ~(ulong)(BufferAlignment - 1)));
            }
        }

        public bool TryAllocate(uint length, out GuestAddress address)
        {
            ulong size = Math.Max(BufferAlignment, ((ulong)length + BufferAlignment - 1) & ~(ulong)(BufferAlignment - 1));
            for (int i = 0; i < _free.Count; i++)
            {
                (ulong start, ulong len) = _free[i];
                if (len >= size)
                {
                    if (len == size)
                    {
                        _free.RemoveAt(i);
                    }
                    else
                    {
                        _free[i] = (start + size, len - size);
                    }
                    _allocated[start] = size;
                    address = new GuestAddress(start);
                    return true;
                }
            }
            address = default;
            return false;
        }

        public void Free(GuestAddress address)
        {
            if (!_allocated.Remove(address.Value, out ulong size))
            {
                throw new InvalidOperationException($"buffer {address} was not allocated by this driver");
            }
            int i = 0;
            while (i < _free.Count && _free[i].Start < address.Value)
            {
                i++;
            }
            _free.Insert(i, (address.Value, size));
            // Coalesce with the following and preceding blocks.
            if (i + 1 < _free.Count && _free[i].Start + _free[i].Length == _free[i + 1].Start)
            {
                _free[i] = (_free[i].Start, _free[i].Length + _free[i + 1].Length);
                _free.RemoveAt(i + 1);
            }
            if (i > 0 && _free[i - 1].Start + _free[i - 1].Length == _free[i].Start)
            {
                _free[i - 1] = (_free[i - 1].Start, _free[i - 1].Length + _free[i].Length);
                _free.RemoveAt(i);
            }
        }
    }
}
