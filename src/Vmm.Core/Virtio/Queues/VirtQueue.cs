using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Memory;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// A split virtqueue (virtio 1.2 §2.7), device side. The transport writes the driver-chosen configuration
/// (<see cref="Size"/>, ring addresses, <see cref="Ready"/>) and calls <see cref="Activate"/> at DRIVER_OK, which
/// validates it once against guest RAM. The device then pops descriptor chains (<see cref="TryPop"/>), processes
/// them in place through <see cref="DescriptorChain"/> spans, readers and writers, and returns them with
/// <see cref="AddUsed(in DescriptorChain, uint)"/> — possibly much later and from another thread: a
/// <see cref="DescriptorChain"/> is a small storable value.
/// <para>Threading: <see cref="TryPop"/>, <see cref="EnableNotifications"/> and <see cref="DisableNotifications"/>
/// belong to one consumer thread; <see cref="AddUsed(in DescriptorChain, uint)"/> and <see cref="ShouldNotify"/>
/// may be called from any thread (serialised by an internal lock). Nothing here allocates after activation.</para>
/// <para>Hostile driver policy: see <see cref="VirtQueueError"/> — the first violation breaks the queue
/// (<see cref="Error"/>), the device then reports DEVICE_NEEDS_RESET. The VMM never reads or writes outside guest
/// RAM and never loops unboundedly whatever the driver writes, including concurrently with the device.</para>
/// <para>The device-thread loop (suppresses kicks while draining, re-arms them — required with EVENT_IDX — and
/// interrupts once per batch):
/// <code>
/// bool used = false;
/// VirtQueueError error;
/// do
/// {
///     queue.DisableNotifications();
///     while (queue.TryPop(out DescriptorChain chain, out error))
///     {
///         ChainReader request = chain.CreateReader();
///         ChainWriter reply = chain.CreateWriter();
///         ... // or keep `chain` (a small struct) and complete it later, from any thread
///         queue.AddUsed(chain, reply.BytesWritten);
///         used = true;
///     }
/// }
/// while (error == VirtQueueError.None &amp;&amp; queue.EnableNotifications());
/// if (used &amp;&amp; queue.ShouldNotify()) notifier.SignalUsedQueue(index);
/// if (error != VirtQueueError.None) notifier.SignalNeedsReset($"queue {index}: {error}");
/// </code></para>
/// </summary>
public sealed unsafe partial class VirtQueue
{
    private readonly Lock _usedLock = new();

    // Host pointers to the three ring areas, valid while activated: Activate proved each whole area lies inside
    // one guest RAM region, and GuestMemory keeps its mappings alive for the VM's lifetime.
    private byte* _descTable;
    private byte* _availRing;
    private byte* _usedRing;
    private GuestMemory? _memory;
    private bool _eventIdx;
    private bool _indirect;
    private ushort _activeSize;
    private ushort _nextAvail;
    private ushort _nextUsed;
    private ushort _signalledUsed;
    private bool _signalledValid;
    private bool[] _inFlight = [];
    private int _inFlightCount;
    private volatile VirtQueueError _error = VirtQueueError.NotReady;
    private int _generation;

    public VirtQueue(ushort maxSize)
    {
        if (!SplitRingLayout.IsValidQueueSize(maxSize))
        {
            throw new ArgumentOutOfRangeException(nameof(maxSize), "queue maximum must be a power of two in 1..32768");
        }
        MaxSize = maxSize;
        Size = maxSize;
    }

    public ushort MaxSize { get; }

    /// <summary>Driver-chosen size (≤ <see cref="MaxSize"/>, a power of two; validated at activation).</summary>
    public ushort Size { get; set; }

    /// <summary>The driver enabled the queue (queue_enable). Only ready queues are activated.</summary>
    public bool Ready { get; set; }

    public GuestAddress DescriptorTable { get; set; }
    public GuestAddress AvailRing { get; set; }
    public GuestAddress UsedRing { get; set; }

    /// <summary>True between a successful <see cref="Activate"/> and <see cref="Reset"/>, unless broken.</summary>
    public bool IsActive => _error == VirtQueueError.None;

    /// <summary><see cref="VirtQueueError.None"/> while healthy; the first violation otherwise
    /// (<see cref="VirtQueueError.NotReady"/> before activation).</summary>
    public VirtQueueError Error => _error;

    /// <summary>Whether VIRTIO_F_EVENT_IDX was negotiated (set at activation).</summary>
    public bool EventIdxEnabled => _eventIdx;

    /// <summary>Chains popped and not yet returned through <see cref="AddUsed(in DescriptorChain, uint)"/>.</summary>
    public int InFlightCount => Volatile.Read(ref _inFlightCount);

    /// <summary>The device's next avail index (chains popped so far, modulo 2^16).</summary>
    public ushort NextAvailIndex => _nextAvail;

    /// <summary>The device's used index (entries published so far, modulo 2^16).</summary>
    public ushort NextUsedIndex => _nextUsed;

    internal int Generation => Volatile.Read(ref _generation);
    internal GuestMemory? Memory => _memory;
    internal bool IndirectEnabled => _indirect;
    internal ushort ActiveSize => _activeSize;

    /// <summary>
    /// Validates the driver's configuration against <paramref name="memory"/> and starts the queue with indices at 0.
    /// Returns the violation (and leaves the queue broken) when size, alignment or placement is wrong.
    /// </summary>
    /// <param name="ackedFeatures">The negotiated features; EVENT_IDX and INDIRECT_DESC are honoured.</param>
    public VirtQueueError Activate(GuestMemory memory, ulong ackedFeatures)
    {
        ArgumentNullException.ThrowIfNull(memory);
        Reset();
        ushort size = Size;
        VirtQueueError error = VirtQueueError.None;
        if (!Ready)
        {
            error = VirtQueueError.NotReady;
        }
        else if (!SplitRingLayout.IsValidQueueSize(size) || size > MaxSize)
        {
            error = VirtQueueError.InvalidSize;
        }
        else if (!DescriptorTable.IsAligned(SplitRingLayout.DescriptorTableAlignment)
            || !AvailRing.IsAligned(SplitRingLayout.AvailRingAlignment)
            || !UsedRing.IsAligned(SplitRingLayout.UsedRingAlignment))
        {
            error = VirtQueueError.RingMisaligned;
        }
        else if (!memory.TryGetSpan(DescriptorTable, SplitRingLayout.DescriptorTableSize(size), out Span<byte> desc)
            || !memory.TryGetSpan(AvailRing, SplitRingLayout.AvailRingSize(size), out Span<byte> avail)
            || !memory.TryGetSpan(UsedRing, SplitRingLayout.UsedRingSize(size), out Span<byte> used))
        {
            error = VirtQueueError.RingOutsideMemory;
        }
        else
        {
            // Pointers into guest RAM stay valid for the VM's lifetime (GuestMemory contract); the ranges were
            // checked just above, and every later access indexes them below the validated size.
            _descTable = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(desc));
            _availRing = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(avail));
            _usedRing = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(used));
            _memory = memory;
            _activeSize = size;
            _eventIdx = (ackedFeatures & VirtioFeatures.EventIdx) != 0;
            _indirect = (ackedFeatures & VirtioFeatures.IndirectDesc) != 0;
            if (_inFlight.Length != size)
            {
                _inFlight = new bool[size];
            }
        }
        _error = error;
        return error;
    }

    /// <summary>Forgets all ring state (driver reset or device reset). Chains popped earlier become stale:
    /// completing them returns <see cref="VirtQueueError.StaleChain"/>.</summary>
    public void Reset()
    {
        lock (_usedLock)
        {
            Interlocked.Increment(ref _generation);
            _error = VirtQueueError.NotReady;
            _descTable = _availRing = _usedRing = null;
            _memory = null;
            _activeSize = 0;
            _nextAvail = _nextUsed = _signalledUsed = 0;
            _signalledValid = false;
            Array.Clear(_inFlight);
            _inFlightCount = 0;
        }
    }

    /// <summary>Marks the queue broken with <paramref name="error"/> (first error wins).</summary>
    internal void Break(VirtQueueError error)
    {
        if (_error == VirtQueueError.None)
        {
            _error = error;
        }
    }

    /// <summary>
    /// Takes the next available chain, fully validated (every descriptor walked once: bounds, loops, indirect rules,
    /// readable-before-writable order, total length). Returns false with <paramref name="error"/> =
    /// <see cref="VirtQueueError.None"/> when the ring is empty, or false with the violation when the queue is
    /// (now) broken.
    /// </summary>
    public bool TryPop(out DescriptorChain chain, out VirtQueueError error)
    {
        chain = default;
        error = _error;
        if (error != VirtQueueError.None)
        {
            return false;
        }
        ushort size = _activeSize;
        // Acquire: the ring entries and descriptors the driver wrote before bumping idx are visible after this read.
        ushort availIdx = Volatile.Read(ref *(ushort*)(_availRing + 2));
        ushort pending = (ushort)(availIdx - _nextAvail);
        if (pending == 0)
        {
            return false;
        }
        if (pending > size)
        {
            return Fail(VirtQueueError.AvailIndexJump, out error);
        }
        // The slot offset is < size (size is a power of two), so it lies inside the validated ring area.
        ushort head = *(ushort*)(_availRing + 4 + 2 * (_nextAvail & (size - 1)));
        if (head >= size)
        {
            return Fail(VirtQueueError.HeadIndexOutOfRange, out error);
        }
        var candidate = new DescriptorChain(this, Generation, head, 0, 0, 0, 0);
        var walker = new DescriptorWalker(candidate);
        uint readable = 0, writable = 0;
        ushort readableCount = 0, writableCount = 0;
        while (walker.MoveNext())
        {
            // Totals cannot overflow: the walker already refused chains whose sum exceeds uint.MaxValue, and
            // counts are bounded by queue size + one indirect table (≤ 32768 + 65536 would overflow ushort,
            // so saturate instead).
            if (walker.CurrentIsWritable)
            {
                writable += (uint)walker.Current.Length;
                writableCount = writableCount == ushort.MaxValue ? ushort.MaxValue : (ushort)(writableCount + 1);
            }
            else
            {
                readable += (uint)walker.Current.Length;
                readableCount = readableCount == ushort.MaxValue ? ushort.MaxValue : (ushort)(readableCount + 1);
            }
        }
        if (walker.Error != VirtQueueError.None)
        {
            return Fail(walker.Error, out error);
        }
        lock (_usedLock)
        {
            if (_inFlight[head])
            {
                // The driver offered a head the device still owns: the chain would be processed twice.
                Break(VirtQueueError.HeadAlreadyInFlight);
                error = _error;
                return false;
            }
            _inFlight[head] = true;
            _inFlightCount++;
        }
        _nextAvail++;
        chain = new DescriptorChain(this, candidate.Generation, head, readable, writable, readableCount, writableCount);
        return true;
    }

    private bool Fail(VirtQueueError violation, out VirtQueueError error)
    {
        Break(violation);
        error = _error;
        return false;
    }

    /// <summary>
    /// Returns <paramref name="chain"/> to the driver with <paramref name="writtenLength"/> bytes written, publishing
    /// the used index with release semantics. Returns <see cref="VirtQueueError.StaleChain"/> (and does nothing)
    /// when the queue was reset since the pop or the chain was already completed.
    /// </summary>
    /// <remarks>A <paramref name="writtenLength"/> above the chain's pop-time writable length is clamped to it: the
    /// chain writers never produce one, and reporting more than the driver offered must not reach the guest, while
    /// throwing here would kill a device thread over what a descriptor rewrite might have provoked.</remarks>
    public VirtQueueError AddUsed(in DescriptorChain chain, uint writtenLength)
    {
        writtenLength = Math.Min(writtenLength, chain.WritableLength);
        lock (_usedLock)
        {
            if (!ReferenceEquals(chain.Queue, this) || chain.Generation != _generation || _usedRing == null
                || !_inFlight[chain.HeadIndex])
            {
                return VirtQueueError.StaleChain;
            }
            _inFlight[chain.HeadIndex] = false;
            _inFlightCount--;
            ushort size = _activeSize;
            // Slot < size: inside the validated used ring.
            byte* element = _usedRing + 4 + 8 * (_nextUsed & (size - 1));
            *(uint*)element = chain.HeadIndex;
            *(uint*)(element + 4) = writtenLength;
            _nextUsed++;
            // Release: the element is visible to the driver before the index that publishes it.
            Volatile.Write(ref *(ushort*)(_usedRing + 2), _nextUsed);
            return VirtQueueError.None;
        }
    }

    /// <summary>
    /// After one or more <see cref="AddUsed(in DescriptorChain, uint)"/> calls: whether the driver wants an interrupt
    /// now (EVENT_IDX <c>used_event</c> or the avail ring's NO_INTERRUPT flag). Call once per batch; true means
    /// call <see cref="IVirtioNotifier.SignalUsedQueue"/>.
    /// </summary>
    public bool ShouldNotify()
    {
        lock (_usedLock)
        {
            if (_usedRing == null)
            {
                return false;
            }
            // Full fence: the used idx store must be globally visible before we read the driver's suppression
            // state, or we could miss a driver that just re-enabled interrupts (store-load ordering).
            Interlocked.MemoryBarrier();
            ushort newUsed = _nextUsed;
            if (!_eventIdx)
            {
                ushort flags = Volatile.Read(ref *(ushort*)_availRing);
                return (flags & SplitRingLayout.AvailFlagNoInterrupt) == 0;
            }
            ushort usedEvent = Volatile.Read(ref *(ushort*)(_availRing + 4 + 2 * _activeSize));
            ushort old = _signalledUsed;
            bool valid = _signalledValid;
            _signalledUsed = newUsed;
            _signalledValid = true;
            // Before the first check there is no "old" index to compare with: notify (as vhost does).
            return !valid || SplitRingLayout.NeedsEvent(usedEvent, newUsed, old);
        }
    }

    /// <summary>Asks the driver not to notify (kick) this queue while the device is busy draining it.</summary>
    public void DisableNotifications()
    {
        if (_usedRing == null || _eventIdx)
        {
            // With EVENT_IDX, simply not advancing avail_event suppresses further kicks.
            return;
        }
        Volatile.Write(ref *(ushort*)_usedRing, SplitRingLayout.UsedFlagNoNotify);
    }

    /// <summary>
    /// Asks the driver to notify again and returns true when chains arrived meanwhile (the caller must drain again
    /// before sleeping, or a kick the driver suppressed would be lost).
    /// </summary>
    public bool EnableNotifications()
    {
        if (_error != VirtQueueError.None)
        {
            return false;
        }
        if (_eventIdx)
        {
            Volatile.Write(ref *(ushort*)(_usedRing + 4 + 8 * _activeSize), _nextAvail);
        }
        else
        {
            Volatile.Write(ref *(ushort*)_usedRing, (ushort)0);
        }
        // Full fence: publish the request for kicks before re-reading avail idx (store-load ordering).
        Interlocked.MemoryBarrier();
        return Volatile.Read(ref *(ushort*)(_availRing + 2)) != _nextAvail;
    }

    /// <summary>The descriptor table as a span (validated at activation); empty when inactive.</summary>
    internal ReadOnlySpan<byte> DescriptorTableSpan =>
        _descTable == null ? default : new ReadOnlySpan<byte>(_descTable, 16 * _activeSize);
}
