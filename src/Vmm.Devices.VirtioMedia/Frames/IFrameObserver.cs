namespace Vmm.Devices.VirtioMedia.Frames;

/// <summary>
/// Sees each frame a backend completes in an MMAP buffer (<see cref="Device.VirtioMediaDevice.FrameObserver"/>):
/// for tools that look at what the guest receives, such as <c>vmm demo --dump-frames</c>. With no observer set
/// the device pays one null check per frame.
/// </summary>
public interface IFrameObserver
{
    /// <summary>
    /// Called on the thread that produced the frame, after its last pixel is written and before its DQBUF event is
    /// queued: the planes are stable and the guest cannot have the buffer yet. The spans are valid only during the
    /// call; the frame is delayed for as long as the call takes, so copy what is needed and return. A STREAMOFF
    /// racing the fill may still drop the frame's DQBUF. An exception fails the session (ERROR event), like a
    /// backend fault.
    /// </summary>
    void FrameCompleted(in CompletedFrame frame);
}

/// <summary>A frame just written into an MMAP buffer: its layout, V4L2 sequence number and memory planes (the
/// shared-memory pages the guest maps, not a copy).</summary>
public readonly ref struct CompletedFrame
{
    public CompletedFrame(uint sessionId, uint sequence, FrameLayout layout, ReadOnlySpan<byte> plane0,
        ReadOnlySpan<byte> plane1 = default, ReadOnlySpan<byte> plane2 = default)
    {
        SessionId = sessionId;
        Sequence = sequence;
        Layout = layout;
        Plane0 = plane0;
        Plane1 = plane1;
        Plane2 = plane2;
    }

    /// <summary>The virtio-media session the frame was produced for.</summary>
    public uint SessionId { get; }

    /// <summary>The V4L2 sequence number the DQBUF event carries (0 for the first frame after STREAMON).</summary>
    public uint Sequence { get; }

    public FrameLayout Layout { get; }

    public ReadOnlySpan<byte> Plane0 { get; }

    /// <summary>Memory plane 1 (NM12, YM12); empty for the single-plane formats.</summary>
    public ReadOnlySpan<byte> Plane1 { get; }

    /// <summary>Memory plane 2 (YM12); empty otherwise.</summary>
    public ReadOnlySpan<byte> Plane2 { get; }

    /// <summary>Memory plane <paramref name="plane"/> (0…2).</summary>
    public ReadOnlySpan<byte> Plane(int plane) => plane switch
    {
        0 => Plane0,
        1 => Plane1,
        2 => Plane2,
        _ => throw new ArgumentOutOfRangeException(nameof(plane)),
    };
}
