using System.Buffers.Binary;
using System.IO.Compression;

namespace Vmm.Core.Tests.Boot;

/// <summary>Synthetic arm64 kernel files for the loader tests.</summary>
internal static class Arm64TestImages
{
    // An Image as Linux writes it: branch code, text_offset, image_size, flags, reserved words, "ARM\x64", then code.
    public static byte[] Image(ulong textOffset = 0, ulong imageSize = 0x30000, ulong flags = 0b1010, int length = 0x10000)
    {
        byte[] file = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(file, 0x91005a4d); // "MZ" + add x13, x18, #0x16 (the EFI stub's)
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(8), textOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(16), imageSize);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(24), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(56), 0x644D5241);
        return file;
    }

    public static byte[] Gzip(byte[] data)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(data);
        }
        return output.ToArray();
    }
}
