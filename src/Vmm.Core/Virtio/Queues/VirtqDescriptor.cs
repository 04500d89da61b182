using System.Buffers.Binary;

namespace Vmm.Core.Virtio.Queues;

/// <summary>One split-ring descriptor, <c>struct virtq_desc</c> (virtio 1.2 §2.7.5): 16 bytes, little-endian.</summary>
/// <param name="Address">Guest-physical buffer address.</param>
/// <param name="Length">Buffer length in bytes.</param>
/// <param name="Flags">A combination of <see cref="VirtqDescriptor.FlagNext"/>, <see cref="VirtqDescriptor.FlagWrite"/>,
/// <see cref="VirtqDescriptor.FlagIndirect"/>.</param>
/// <param name="Next">Index of the next descriptor when <see cref="FlagNext"/> is set.</param>
public readonly record struct VirtqDescriptor(ulong Address, uint Length, ushort Flags, ushort Next)
{
    public const int Size = 16;
    public const ushort FlagNext = 1;
    /// <summary>The buffer is device-writable (device-readable otherwise).</summary>
    public const ushort FlagWrite = 2;
    /// <summary>The buffer is a table of descriptors.</summary>
    public const ushort FlagIndirect = 4;

    public bool HasNext => (Flags & FlagNext) != 0;
    public bool IsWritable => (Flags & FlagWrite) != 0;
    public bool IsIndirect => (Flags & FlagIndirect) != 0;

    /// <summary>Decodes a descriptor from 16 bytes (read once; the caller validates the copy).</summary>
    public static VirtqDescriptor Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source),
        BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[12..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[14..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, Address);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Length);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[12..], Flags);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[14..], Next);
    }
}

/// <summary>An entry of the used ring, <c>struct virtq_used_elem</c>: the chain's head index and the number of bytes
/// the device wrote into its device-writable buffers.</summary>
public readonly record struct UsedElement(uint Id, uint Length);

/// <summary>Sizes and field offsets of the split-ring areas (virtio 1.2 §2.7), for a queue of a given size.</summary>
public static class SplitRingLayout
{
    public const ulong DescriptorTableAlignment = 16;
    public const ulong AvailRingAlignment = 2;
    public const ulong UsedRingAlignment = 4;
    public const ushort MaxQueueSize = 32768;

    /// <summary><c>virtq_avail.flags</c> bit: the driver does not want interrupts (ignored with EVENT_IDX).</summary>
    public const ushort AvailFlagNoInterrupt = 1;
    /// <summary><c>virtq_used.flags</c> bit: the device does not want notifications (ignored with EVENT_IDX).</summary>
    public const ushort UsedFlagNoNotify = 1;

    public static ulong DescriptorTableSize(ushort queueSize) => 16UL * queueSize;

    /// <summary>flags, idx, ring[size], used_event.</summary>
    public static ulong AvailRingSize(ushort queueSize) => 6 + 2UL * queueSize;

    /// <summary>flags, idx, ring[size] of 8-byte elements, avail_event.</summary>
    public static ulong UsedRingSize(ushort queueSize) => 6 + 8UL * queueSize;

    /// <summary>True for 1..32768 and a power of two (split rings require it, virtio 1.2 §2.7).</summary>
    public static bool IsValidQueueSize(ushort size) => size != 0 && size <= MaxQueueSize && (size & (size - 1)) == 0;

    /// <summary>The spec's <c>vring_need_event</c>: true when moving the index from <paramref name="oldIndex"/> to
    /// <paramref name="newIndex"/> passes <paramref name="eventIndex"/> (all modulo 2^16).</summary>
    public static bool NeedsEvent(ushort eventIndex, ushort newIndex, ushort oldIndex) =>
        (ushort)(newIndex - eventIndex - 1) < (ushort)(newIndex - oldIndex);
}
