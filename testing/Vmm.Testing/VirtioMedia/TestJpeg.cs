using System.Runtime.InteropServices;

namespace Vmm.Testing.VirtioMedia;

/// <summary>Test input for the JPEG decoder: smooth RGB images, JPEGs encoded from them with libjpeg-turbo (the same
/// library the decoder uses, so the tests need nothing else), and v4l2-ctl's framed stream files.</summary>
public static partial class TestJpeg
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
        if (handle == 0)
        {
            throw new InvalidOperationException("tjInitCompress failed");
        }
        try
        {
            byte* jpeg = null;
            nuint size = 0;
            fixed (byte* source = rgb)
            {
                if (tjCompress2(handle, source, width, width * 3, height, 0, &jpeg, &size, subsampling, quality, 0) != 0)
                {
                    throw new InvalidOperationException("tjCompress2 failed");
                }
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

    /// <summary>Frames in the framing of v4l2-ctl's <c>--stream-from-hdr</c>: per frame the big-endian fourcc
    /// 'Vhdr', then (one plane) a big-endian length and the bytes.</summary>
    public static byte[] V4l2CtlStream(IEnumerable<byte[]> frames)
    {
        var stream = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        foreach (byte[] frame in frames)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(word, 'V' | 'h' << 8 | 'd' << 16 | (uint)'r' << 24);
            stream.Write(word);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(word, (uint)frame.Length);
            stream.Write(word);
            stream.Write(frame);
        }
        return stream.ToArray();
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
