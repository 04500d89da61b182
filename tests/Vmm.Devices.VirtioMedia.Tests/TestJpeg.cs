using System.Runtime.InteropServices;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>Test input for the JPEG decoder: smooth RGB images, and JPEGs encoded from them with libjpeg-turbo (the
/// same library the decoder uses, so the tests need nothing else).</summary>
internal static partial class TestJpeg
{
    private const string Library = "libturbojpeg.so.0";

    public const int Subsampling444 = 0, Subsampling422 = 1, Subsampling420 = 2, SubsamplingGray = 3;

    /// <summary>A <paramref name="width"/>×<paramref name="height"/> RGB24 image: red rises left to right, green top
    /// to bottom, blue is <paramref name="blue"/> (smooth, so JPEG's error stays small).</summary>
    public static byte[] Gradient(int width, int height, byte blue = 128)
    {
        byte[] rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                rgb[i] = (byte)(x * 255 / Math.Max(1, width - 1));
                rgb[i + 1] = (byte)(y * 255 / Math.Max(1, height - 1));
                rgb[i + 2] = blue;
            }
        }
        return rgb;
    }

    /// <summary>Encodes an RGB24 image as a baseline JPEG.</summary>
    public static unsafe byte[] Encode(byte[] rgb, int width, int height, int subsampling = Subsampling420, int quality = 95)
    {
        nint handle = tjInitCompress();
        Assert.NotEqual(0, handle);
        try
        {
            byte* jpeg = null;
            nuint size = 0;
            fixed (byte* source = rgb)
            {
                Assert.Equal(0, tjCompress2(handle, source, width, width * 3, height, 0, &jpeg, &size, subsampling, quality, 0));
            }
            try
            {
                return new ReadOnlySpan<byte>(jpeg, (int)size).ToArray();
            }
            finally
            {
                tjFree(jpeg);
            }
        }
        finally
        {
            tjDestroy(handle);
        }
    }

    /// <summary>Full-range BT.601 luma (JFIF) of an RGB pixel.</summary>
    public static int Luma(byte r, byte g, byte b) => (int)Math.Round(0.299 * r + 0.587 * g + 0.114 * b);

    [LibraryImport(Library)]
    private static partial nint tjInitCompress();

    [LibraryImport(Library)]
    private static unsafe partial int tjCompress2(nint handle, byte* srcBuf, int width, int pitch, int height, int pixelFormat,
        byte** jpegBuf, nuint* jpegSize, int jpegSubsamp, int jpegQual, int flags);

    [LibraryImport(Library)]
    private static unsafe partial void tjFree(byte* buffer);

    [LibraryImport(Library)]
    private static partial int tjDestroy(nint handle);
}
