using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// What a capture device built on the kit supplies: the formats, discrete sizes and rates it offers, and frames.
/// Everything V4L2 about it (buffer queue, format negotiation, controls, events, pacing) is the kit's
/// <see cref="V4l2CaptureDevice"/> and <see cref="CaptureSession"/>.
/// </summary>
public interface ICaptureFrameSource
{
    /// <summary>The formats in ENUM_FMT order; the first one replaces a format the source does not offer.</summary>
    IReadOnlyList<CaptureFormat> Formats { get; }

    /// <summary>The discrete frame sizes, in ENUM_FRAMESIZES order.</summary>
    ReadOnlySpan<(uint Width, uint Height)> FrameSizes { get; }

    /// <summary>The frame rates in frames per second, ascending (ENUM_FRAMEINTERVALS lists the fastest first).</summary>
    ReadOnlySpan<uint> FrameRates { get; }

    /// <summary>The name of the one camera input (ENUMINPUT).</summary>
    string InputName { get; }

    /// <summary>How a frame of <paramref name="format"/> lies in memory, for a frame observer.</summary>
    FrameLayout Layout(CaptureFormat format, uint width, uint height);

    /// <summary>Creates what fills the buffers of one session (called at open); per session, so a writer may keep
    /// scratch state without locks.</summary>
    ICaptureFrameWriter OpenWriter();
}

/// <summary>Fills one session's buffers, on the device's frame-producing thread.</summary>
public interface ICaptureFrameWriter
{
    /// <summary>Writes frame <see cref="CaptureFrame.Sequence"/> into the frame's planes. Must not allocate.</summary>
    void Fill(ref CaptureFrame frame);
}

/// <summary>One buffer to fill: the format it was allocated for and where each memory plane goes.</summary>
public ref struct CaptureFrame
{
    /// <summary>The device format, which cannot change while the buffer exists.</summary>
    public CaptureFormat Format;

    public uint Width;

    public uint Height;

    /// <summary>Frames produced since STREAMON, this one excluded.</summary>
    public uint Sequence;

    /// <summary>The buffer (an MMAP one) still holds a frame this session wrote before, so a source whose frames do
    /// not change may leave it as it is.</summary>
    public bool HoldsEarlierFrame;

    public PlaneDestination Plane0;

    public PlaneDestination Plane1;

    public PlaneDestination Plane2;
}
