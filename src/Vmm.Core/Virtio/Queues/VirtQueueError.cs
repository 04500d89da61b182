namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// Why a virtqueue refused a driver-supplied value. Every variant is a driver protocol violation (or a stale handle
/// after reset); none is a VMM bug. Policy: the first violation <b>breaks</b> the queue — it stops yielding chains
/// and keeps reporting the error — and the device asks its transport for DEVICE_NEEDS_RESET
/// (<see cref="IVirtioNotifier.SignalNeedsReset"/>). Chains are never half-processed.
/// </summary>
public enum VirtQueueError : byte
{
    None = 0,
    /// <summary>The queue was not activated (driver did not enable it, or the device was reset).</summary>
    NotReady,
    /// <summary>Queue size is zero, not a power of two, or larger than the device maximum.</summary>
    InvalidSize,
    /// <summary>Descriptor table not 16-byte aligned, avail ring not 2-byte aligned or used ring not 4-byte aligned.</summary>
    RingMisaligned,
    /// <summary>A ring is not entirely inside one guest RAM region (e.g. placed in MMIO space).</summary>
    RingOutsideMemory,
    /// <summary>The avail index ran more than queue-size entries ahead of the device (virtio 1.2 §2.7.6).</summary>
    AvailIndexJump,
    /// <summary>An avail ring entry names a descriptor index ≥ queue size.</summary>
    HeadIndexOutOfRange,
    /// <summary>A descriptor's <c>next</c> is ≥ the size of its table.</summary>
    NextIndexOutOfRange,
    /// <summary>The chain has more descriptors than its table (it loops back on itself).</summary>
    ChainTooLong,
    /// <summary>A descriptor's buffer is not entirely inside one guest RAM region.</summary>
    BufferOutsideMemory,
    /// <summary>The sum of the chain's buffer lengths exceeds 2^32 − 1 bytes (virtio 1.2 §2.7.5.2).</summary>
    TotalLengthOverflow,
    /// <summary>A device-readable descriptor follows a device-writable one (virtio 1.2 §2.7.4.2).</summary>
    ReadableAfterWritable,
    /// <summary>INDIRECT_DESC was not negotiated but a descriptor has the INDIRECT flag.</summary>
    IndirectNotNegotiated,
    /// <summary>An indirect table contains an INDIRECT descriptor (virtio 1.2 §2.7.5.3.1).</summary>
    IndirectNested,
    /// <summary>An INDIRECT descriptor also has NEXT set (virtio 1.2 §2.7.5.3.1).</summary>
    IndirectWithNext,
    /// <summary>An indirect table's length is zero, not a multiple of 16, or above 65536 entries.</summary>
    IndirectBadLength,
    /// <summary>The avail ring offers a head the device has popped and not yet returned.</summary>
    HeadAlreadyInFlight,
    /// <summary>The chain handle belongs to a queue generation that was reset since it was popped.</summary>
    StaleChain,
}
