namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>A compressed format a decoder accepts on its OUTPUT queue.</summary>
/// <param name="FourCc">The V4L2 pixel format.</param>
/// <param name="Description">Text for ENUM_FMT.</param>
public sealed record CodedFormat(uint FourCc, string Description);

/// <summary>What a coded frame's header says about the stream: its visible size.</summary>
public readonly record struct CodedFrameInfo(uint Width, uint Height);

/// <summary>
/// What a stateful memory-to-memory decoder built on the kit supplies: its coded (OUTPUT) and decoded (CAPTURE)
/// formats, the sizes it handles, and a decoder per session. Everything V4L2 about it (the two buffer queues,
/// format negotiation, source-change and drain, DECODER_CMD, events, per-session work scheduling) is the kit's
/// <see cref="V4l2DecoderDevice"/> and <see cref="DecoderSession"/>.
/// </summary>
public interface IDecoderCodec
{
    /// <summary>The coded formats in ENUM_FMT order; the first replaces one the codec does not know.</summary>
    IReadOnlyList<CodedFormat> CodedFormats { get; }

    /// <summary>The decoded formats in ENUM_FMT order (single memory plane each); the first is the default.</summary>
    IReadOnlyList<CaptureFormat> DecodedFormats { get; }

    /// <summary>Smallest and largest visible sizes; a larger stream is refused frame by frame.</summary>
    (uint MinWidth, uint MinHeight, uint MaxWidth, uint MaxHeight) SizeLimits { get; }

    /// <summary>Decoded buffers are this many pixels wide and high multiples (a power of two, at least 2).</summary>
    uint Alignment { get; }

    /// <summary>Creates one session's decoder (called at open); per session, so it may keep scratch state without locks.</summary>
    IFrameDecoder OpenDecoder();
}

/// <summary>Decodes one session's frames, on that session's work item (one frame at a time).</summary>
public interface IFrameDecoder : IDisposable
{
    /// <summary>Reads the header of one coded frame; false when <paramref name="coded"/> is not a frame of this codec.
    /// Must not trust anything in it.</summary>
    bool TryReadHeader(ReadOnlySpan<byte> coded, out CodedFrameInfo info);

    /// <summary>Decodes one coded frame whose header said <paramref name="info"/> into <paramref name="frame"/> (a
    /// buffer of <see cref="CaptureFrame.Width"/>×<see cref="CaptureFrame.Height"/>, the aligned size, in its
    /// format). False when the frame is corrupt; the buffer then goes back marked with an error. Must not allocate
    /// per frame.</summary>
    bool Decode(ReadOnlySpan<byte> coded, in CodedFrameInfo info, ref CaptureFrame frame);
}
