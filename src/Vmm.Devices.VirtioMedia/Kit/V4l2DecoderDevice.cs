using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// A stateful memory-to-memory decoder on the kit (the V4L2 stateful decoder interface): every open is an
/// independent decoding context with its own OUTPUT and CAPTURE queues and formats (<see cref="DecoderSession"/>),
/// and each session's frames are decoded on a work item of its own, so one slow stream never holds up another.
/// The multi-planar API only, as the field's decoders offer it.
/// </summary>
public sealed class V4l2DecoderDevice
{
    /// <summary>A decoder over <paramref name="codec"/>. A codec with reference frames (H.264 and the like) passes
    /// <paramref name="minCaptureBuffers"/>, which becomes the read-only MIN_BUFFERS_FOR_CAPTURE control the stateful
    /// decoder interface requires; a still-image codec (JPEG) has no such control (v4l2-compliance refuses it there).</summary>
    public V4l2DecoderDevice(IDecoderCodec codec, int? minCaptureBuffers = null)
    {
        Codec = codec;
        Controls = new V4l2ControlSet(minCaptureBuffers is int min
            ?
            [
                V4l2ControlInfo.Class(V4l2Const.CtrlClassUser, "User Controls"),
                new(V4l2Const.CidMinBuffersForCapture, V4l2Const.CtrlTypeInteger, "Min Number of Capture Buffers", 1, 32, 1,
                    min, V4l2Const.CtrlFlagReadOnly | V4l2Const.CtrlFlagVolatile),
            ]
            : []);
    }

    public IDecoderCodec Codec { get; }

    /// <summary>Device-wide controls (read-only ones only, so sharing them between sessions is sound).</summary>
    public V4l2ControlSet Controls { get; }

    /// <summary>V4L2 device_caps: the multi-planar memory-to-memory API and streaming.</summary>
    public static uint DeviceCaps => V4l2Const.CapVideoM2mMplane | V4l2Const.CapStreaming;

    /// <summary>Opens a decoding context.</summary>
    public DecoderSession Open(IMediaSessionHost host) => new(this, host);
}
