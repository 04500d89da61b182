using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vmm.Devices.VirtioMedia.Backends.JpegDecoder;

/// <summary>
/// The part of libjpeg-turbo's TurboJPEG API (<c>turbojpeg.h</c>, API 2.x, which 3.x still exports) the JPEG decoder
/// uses: header parsing and decompression into caller-owned memory, so a frame is decoded straight into the guest's
/// buffer. The library is Debian's <c>libturbojpeg0</c>; it is loaded on first use.
/// </summary>
internal static partial class TurboJpeg
{
    public const string Library = "libturbojpeg.so.0";

    // enum TJPF
    public const int PixelFormatRgb = 0;
    public const int PixelFormatBgrx = 3;

    // enum TJSAMP
    public const int Subsampling444 = 0, Subsampling422 = 1, Subsampling420 = 2, SubsamplingGray = 3, Subsampling440 = 4,
        Subsampling411 = 5, Subsampling441 = 6;

    // TJFLAG_LIMITSCANS: refuse progressive JPEGs with more than 500 scans, which otherwise cost minutes of CPU
    // for a few kilobytes of hostile input (libjpeg-turbo's answer to CVE-2018-11813-style inputs).
    public const int FlagLimitScans = 32768;

    /// <summary>True when the library can be loaded on this machine.</summary>
    public static bool IsAvailable()
    {
        if (!NativeLibrary.TryLoad(Library, out nint handle))
        {
            return false;
        }
        NativeLibrary.Free(handle);
        return true;
    }

    // unsigned long is 64 bits on the LP64 targets we run on (x86_64, arm64 Linux), hence nuint.
    [LibraryImport(Library)]
    public static partial TurboJpegHandle tjInitDecompress();

    [LibraryImport(Library)]
    public static partial int tjDestroy(nint handle);

    [LibraryImport(Library)]
    public static unsafe partial int tjDecompressHeader3(TurboJpegHandle handle, byte* jpegBuf, nuint jpegSize,
        out int width, out int height, out int jpegSubsamp, out int jpegColorspace);

    [LibraryImport(Library)]
    public static unsafe partial int tjDecompress2(TurboJpegHandle handle, byte* jpegBuf, nuint jpegSize, byte* dstBuf,
        int width, int pitch, int height, int pixelFormat, int flags);

    [LibraryImport(Library)]
    public static unsafe partial int tjDecompressToYUVPlanes(TurboJpegHandle handle, byte* jpegBuf, nuint jpegSize,
        byte** dstPlanes, int width, int* strides, int height, int flags);

    /// <summary>Horizontal and vertical chroma subsampling factors of a TJSAMP value (1, 2 or 4), or (0, 0) for
    /// grayscale and unknown values.</summary>
    public static (int Horizontal, int Vertical) ChromaFactors(int subsampling) => subsampling switch
    {
        Subsampling444 => (1, 1),
        Subsampling422 => (2, 1),
        Subsampling420 => (2, 2),
        Subsampling440 => (1, 2),
        Subsampling411 => (4, 1),
        Subsampling441 => (1, 4),
        _ => (0, 0),
    };
}

/// <summary>A TurboJPEG instance (<c>tjhandle</c>); released with <c>tjDestroy</c>. Calls that take it keep it alive
/// for their duration, so disposing it while another thread decodes is safe.</summary>
internal sealed class TurboJpegHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public TurboJpegHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle() => TurboJpeg.tjDestroy(handle) == 0;
}
