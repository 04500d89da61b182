using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.JpegDecoder;

/// <summary>
/// The built-in JPEG decoder: a kit <see cref="V4l2DecoderDevice"/> that takes JPEG and Motion-JPEG frames on its
/// OUTPUT queue and gives NV12, YU12, RGB24 or XBGR32 frames on its CAPTURE queue, decoding with libjpeg-turbo.
/// Every open is an independent decoding context.
/// </summary>
public sealed class JpegDecoderBackend : IMediaBackend
{
    private readonly V4l2DecoderDevice _device;

    public JpegDecoderBackend(JpegDecoderOptions options)
    {
        if (!TurboJpeg.IsAvailable())
        {
            throw new MediaBackendException($"the JPEG decoder needs {TurboJpeg.Library} (Debian package libturbojpeg0)");
        }
        Options = options;
        _device = new V4l2DecoderDevice(new JpegCodec());
    }

    public JpegDecoderOptions Options { get; }

    public uint DeviceCaps => V4l2DecoderDevice.DeviceCaps;

    public string Card => Options.Card;

    public int Open(IMediaSessionHost host, out MediaBackendSession? session)
    {
        session = _device.Open(host);
        return 0;
    }

    public void Dispose()
    {
    }
}

/// <summary>JPEG as a kit codec: baseline and progressive JPEG, any chroma subsampling, up to 4096×4096.</summary>
internal sealed class JpegCodec : IDecoderCodec
{
    private static readonly CodedFormat[] Coded =
    [
        new(FourCc.Jpeg, "JFIF JPEG"),
        new(FourCc.Mjpeg, "Motion-JPEG"),
    ];

    private static readonly CaptureFormat[] Decoded =
    [
        new DecodedFormat(FourCc.Nv12, "Y/UV 4:2:0", DecodedLayout.Nv12),
        new DecodedFormat(FourCc.Yu12, "Planar YUV 4:2:0", DecodedLayout.Yu12),
        new DecodedFormat(FourCc.Rgb24, "24-bit RGB 8-8-8", DecodedLayout.Rgb24),
        new DecodedFormat(FourCc.Xbgr32, "32-bit BGRX 8-8-8-8", DecodedLayout.Bgrx32),
    ];

    public IReadOnlyList<CodedFormat> CodedFormats => Coded;

    public IReadOnlyList<CaptureFormat> DecodedFormats => Decoded;

    public (uint MinWidth, uint MinHeight, uint MaxWidth, uint MaxHeight) SizeLimits => (16, 16, 4096, 4096);

    // A multiple of every JPEG MCU's luma plane padding (at most 4 pixels), and of the 16 that video buffers
    // commonly align to.
    public uint Alignment => 16;

    public IFrameDecoder OpenDecoder() => new JpegFrameDecoder();
}
