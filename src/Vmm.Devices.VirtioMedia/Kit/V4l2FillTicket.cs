namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>A buffer the producer took with <see cref="V4l2BufferQueue.TryStartFill"/>: which one, of which stream,
/// and its frame number.</summary>
public readonly struct V4l2FillTicket
{
    internal V4l2FillTicket(V4l2BufferQueue.Slot buffer, int index, int generation, uint sequence, bool isMmap)
    {
        Buffer = buffer;
        Index = index;
        Generation = generation;
        Sequence = sequence;
        IsMmap = isMmap;
    }

    internal V4l2BufferQueue.Slot Buffer { get; }

    internal int Index { get; }

    internal int Generation { get; }

    /// <summary>The frame's sequence number (frames taken since STREAMON).</summary>
    public uint Sequence { get; }

    /// <summary>True for an MMAP buffer (region 0), false for guest pages (SHARED_PAGES).</summary>
    public bool IsMmap { get; }

    /// <summary>Number of memory planes of the buffer.</summary>
    public int PlaneCount => Buffer.PlaneCount;
}
