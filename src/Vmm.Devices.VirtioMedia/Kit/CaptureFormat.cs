using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// A raw pixel format a capture device offers, as the kit's format helpers need it: its fourcc and ENUM_FMT text,
/// how many memory planes it takes and how large each is. A frame source derives its own formats from this.
/// </summary>
/// <param name="FourCc">The V4L2 pixel format.</param>
/// <param name="Description">Text for ENUM_FMT.</param>
/// <param name="MemoryPlanes">Number of separately allocated memory planes (1 for contiguous formats).</param>
/// <param name="MultiPlanarOnly">Only offered on the multi-planar API (formats with more than one memory plane).</param>
public abstract record CaptureFormat(uint FourCc, string Description, int MemoryPlanes, bool MultiPlanarOnly)
{
    /// <summary>Bytes per line of memory plane <paramref name="plane"/> for a <paramref name="width"/>-pixel row.</summary>
    public abstract uint BytesPerLine(int plane, uint width);

    /// <summary>Size in bytes of memory plane <paramref name="plane"/>.</summary>
    public abstract uint SizeImage(int plane, uint width, uint height);

    /// <summary>The V4L2 colorspace reported for this format.</summary>
    public abstract uint Colorspace { get; }

    /// <summary>The Y'CbCr encoding reported (0: the colorspace's default).</summary>
    public virtual uint YcbcrEncoding => V4l2Const.YcbcrEncDefault;

    /// <summary>The quantization range reported (0: the colorspace's default).</summary>
    public virtual uint Quantization => V4l2Const.QuantizationDefault;
}
