using System.Buffers;
using SkiaSharp;
using Vmm.Devices.VirtioMedia.Frames;

namespace Vmm.FramePng;

/// <summary>
/// Writes frames as PNG through SkiaSharp (Skia's libpng encoder), the one place in the VMM that knows an image
/// encoder. Raw frames are converted by <see cref="FrameConverter"/> first. For pictures people look at (the demo's
/// <c>--dump-frames</c>, tests), not for the streaming path: encoding a 1080p frame takes tens of milliseconds.
/// </summary>
public static class FramePngWriter
{
    /// <summary>zlib level 6, libpng's default: test-pattern frames compress to a few KiB at any level, and a
    /// camera frame is not worth the seconds level 9 would cost.</summary>
    private const int ZlibLevel = 6;

    /// <summary>Encodes <paramref name="rgba"/> (R, G, B, A bytes, rows of 4·<paramref name="width"/>; alpha is
    /// not stored: frames are opaque) as a PNG into <paramref name="destination"/>.</summary>
    public static void WriteRgba(Stream destination, ReadOnlySpan<byte> rgba, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        int rowBytes = checked(width * FrameConverter.RgbaBytesPerPixel);
        if (rgba.Length < checked(rowBytes * height))
        {
            throw new ArgumentException($"{rgba.Length} bytes do not hold {width}x{height} RGBA pixels", nameof(rgba));
        }
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var options = new SKPngEncoderOptions(SKPngEncoderFilterFlags.AllFilters, ZlibLevel);
        bool encoded;
        unsafe
        {
            // Interop edge: Skia reads the pixels through a pointer, so they stay pinned while it encodes.
            fixed (byte* pixels = rgba)
            {
                using var pixmap = new SKPixmap(info, (IntPtr)pixels, rowBytes);
                using var output = new SKManagedWStream(destination);
                encoded = pixmap.Encode(output, options);
            }
        }
        if (!encoded)
        {
            throw new IOException($"the PNG encoder refused a {width}x{height} frame");
        }
    }

    /// <summary>Writes <paramref name="rgba"/> as the PNG file <paramref name="path"/> (replaced if it exists; no
    /// partial file is left when writing fails).</summary>
    public static void SaveRgba(string path, ReadOnlySpan<byte> rgba, int width, int height)
    {
        bool opened = false, written = false;
        try
        {
            using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                opened = true;
                WriteRgba(file, rgba, width, height);
            }
            written = true;
        }
        finally
        {
            if (opened && !written)
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>Converts a raw frame (<see cref="FrameConverter.ToRgba"/>) and writes it as the PNG file
    /// <paramref name="path"/>. The RGBA pixels live in a pooled buffer for the call.</summary>
    public static void SaveFrame(string path, in FrameLayout layout, ReadOnlySpan<byte> plane0, ReadOnlySpan<byte> plane1 = default,
        ReadOnlySpan<byte> plane2 = default)
    {
        if (layout.Validate() is { } error)
        {
            throw new ArgumentException(error, nameof(layout));
        }
        int size = FrameConverter.RgbaSize(layout.Width, layout.Height);
        byte[] rgba = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            FrameConverter.ToRgba(layout, plane0, plane1, plane2, rgba);
            SaveRgba(path, rgba.AsSpan(0, size), layout.Width, layout.Height);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rgba);
        }
    }
}
