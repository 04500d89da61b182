using System.Buffers.Binary;
using System.IO.Compression;
using K4os.Compression.LZ4;
using SharpCompress.Compressors.BZip2;
using SharpCompress.Compressors.LZMA;

namespace Vmm.Core.Boot;

/// <summary>Compression of a bzImage payload, as detected from its magic bytes.</summary>
public enum PayloadCompression
{
    /// <summary>Not compressed (an ELF image as is).</summary>
    None,
    Gzip,
    Zstd,
    Xz,
    /// <summary>LZ4 legacy frame format (<c>lz4 -l</c>), what the kernel's build uses.</summary>
    Lz4,
    Lzma,
    Bzip2,
}

/// <summary>
/// Decompresses a bzImage payload into the vmlinux ELF it holds, so the VMM can skip the kernel's own decompressor
/// (which runs at emulator speed on a PVM host, see docs/host-kvm.md). The payload is untrusted input: its format
/// comes from the magic bytes, its size from the 4-byte little-endian trailer the kernel build appends
/// (scripts/Makefile.lib size_append; for gzip it is the gzip ISIZE field), that size is checked against a cap
/// before anything is allocated, and the decompressed length must match it exactly.
/// </summary>
public static class PayloadDecompressor
{
    /// <summary>Default cap on the uncompressed kernel: far above any real vmlinux, far below host memory.</summary>
    public const ulong DefaultMaxUncompressedSize = 512UL << 20;

    /// <summary>Detects the compression format of <paramref name="payload"/> from its first bytes, or null.</summary>
    public static PayloadCompression? Detect(ReadOnlySpan<byte> payload)
    {
        if (payload.StartsWith((ReadOnlySpan<byte>)[0x1F, 0x8B]))
        {
            return PayloadCompression.Gzip;
        }
        if (payload.StartsWith((ReadOnlySpan<byte>)[0x28, 0xB5, 0x2F, 0xFD]))
        {
            return PayloadCompression.Zstd;
        }
        if (payload.StartsWith((ReadOnlySpan<byte>)[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]))
        {
            return PayloadCompression.Xz;
        }
        if (payload.StartsWith((ReadOnlySpan<byte>)[0x02, 0x21, 0x4C, 0x18]))
        {
            return PayloadCompression.Lz4;
        }
        // .lzma ("alone") header: properties byte 0x5D (lc=3, lp=0, pb=2, what `lzma -9` writes), then the
        // dictionary size; the kernel's dictionaries are well below 16 MiB<<4, so the next two bytes are zero.
        if (payload.StartsWith((ReadOnlySpan<byte>)[0x5D, 0x00, 0x00]))
        {
            return PayloadCompression.Lzma;
        }
        if (payload.StartsWith("BZh"u8))
        {
            return PayloadCompression.Bzip2;
        }
        if (payload.StartsWith((ReadOnlySpan<byte>)[0x7F, (byte)'E', (byte)'L', (byte)'F']))
        {
            return PayloadCompression.None;
        }
        return null;
    }

    /// <summary>
    /// Decompresses <paramref name="payload"/> (compressed data followed by the 4-byte uncompressed size).
    /// Throws <see cref="KernelImageException"/> for an unknown format, a size above <paramref name="maxSize"/>,
    /// corrupt data, or a length that differs from the trailer.
    /// </summary>
    public static byte[] Decompress(ReadOnlySpan<byte> payload, out PayloadCompression compression,
        ulong maxSize = DefaultMaxUncompressedSize)
    {
        PayloadCompression? detected = Detect(payload);
        if (detected is null)
        {
            throw new KernelImageException(
                $"bzImage payload has an unknown compression format (first bytes {Convert.ToHexString(payload[..Math.Min(6, payload.Length)])})");
        }
        compression = detected.Value;
        if (compression == PayloadCompression.None)
        {
            return payload.ToArray();
        }
        if (payload.Length < 8)
        {
            throw new KernelImageException($"{compression} payload is truncated ({payload.Length} bytes)");
        }
        uint declared = BinaryPrimitives.ReadUInt32LittleEndian(payload[^4..]);
        if (declared > maxSize)
        {
            throw new KernelImageException(
                $"{compression} payload declares {declared} uncompressed bytes, above the {maxSize >> 20} MiB limit");
        }
        if (declared == 0)
        {
            throw new KernelImageException($"{compression} payload declares an uncompressed size of 0");
        }
        var output = new byte[declared];
        // gzip's own trailer is the size; every other format has the size appended after its stream.
        ReadOnlySpan<byte> stream = compression == PayloadCompression.Gzip ? payload : payload[..^4];
        try
        {
            switch (compression)
            {
                case PayloadCompression.Gzip:
                    ReadExact(new GZipStream(new MemoryStream(stream.ToArray(), writable: false), System.IO.Compression.CompressionMode.Decompress),
                        output, compression);
                    break;
                case PayloadCompression.Zstd:
                    ReadExact(new ZstdSharp.DecompressionStream(new MemoryStream(stream.ToArray(), writable: false)), output,
                        compression);
                    break;
                case PayloadCompression.Xz:
                    CheckLength(XzDecoder.Decode(stream, output), output, compression);
                    break;
                case PayloadCompression.Lz4:
                    CheckLength(DecodeLz4Legacy(stream, output), output, compression);
                    break;
                case PayloadCompression.Lzma:
                    DecodeLzmaAlone(stream, output);
                    break;
                case PayloadCompression.Bzip2:
                    ReadExact(BZip2Stream.Create(new MemoryStream(stream.ToArray(), writable: false),
                        SharpCompress.Compressors.CompressionMode.Decompress, decompressConcatenated: false, leaveOpen: false),
                        output, compression);
                    break;
            }
        }
        catch (KernelImageException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Decoders report corrupt input with assorted exception types; the user needs one sentence.
            throw new KernelImageException($"{compression} payload is corrupt: {e.Message}", e);
        }
        return output;
    }

    /// <summary>Fills <paramref name="output"/> from <paramref name="decoder"/> and requires the stream to end there.</summary>
    private static void ReadExact(Stream decoder, byte[] output, PayloadCompression compression)
    {
        using (decoder)
        {
            int total = 0;
            while (total < output.Length)
            {
                int n = decoder.Read(output, total, output.Length - total);
                if (n == 0)
                {
                    break;
                }
                total += n;
            }
            CheckLength(total, output, compression);
            Span<byte> probe = stackalloc byte[1];
            if (decoder.Read(probe) != 0)
            {
                throw new KernelImageException(
                    $"{compression} payload decompresses to more than the {output.Length} bytes its trailer declares");
            }
        }
    }

    private static void CheckLength(int produced, byte[] output, PayloadCompression compression)
    {
        if (produced != output.Length)
        {
            throw new KernelImageException(
                $"{compression} payload decompressed to {produced} bytes but its trailer declares {output.Length}");
        }
    }

    /// <summary>The LZ4 legacy format (lib/decompress_unlz4.c): magic 0x184C2102, then blocks of
    /// [u32 LE compressed size][LZ4 block], each at most 8 MiB uncompressed; the magic may repeat (concatenation).</summary>
    internal static int DecodeLz4Legacy(ReadOnlySpan<byte> input, Span<byte> output)
    {
        const uint magic = 0x184C2102;
        const int blockMax = 8 << 20;
        int pos = 4; // Detect() checked the magic
        int written = 0;
        int block = 0;
        while (pos < input.Length)
        {
            if (input.Length - pos < 4)
            {
                throw new KernelImageException($"Lz4 payload is truncated inside the header of block {block}");
            }
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(input[pos..]);
            pos += 4;
            if (size == magic)
            {
                continue;
            }
            if (size == 0 || size > (uint)LZ4Codec.MaximumOutputSize(blockMax) || size > (uint)(input.Length - pos))
            {
                throw new KernelImageException($"Lz4 payload block {block} has an invalid size {size}");
            }
            Span<byte> target = output[written..];
            if (target.Length > blockMax)
            {
                target = target[..blockMax];
            }
            int n = LZ4Codec.Decode(input.Slice(pos, (int)size), target);
            if (n < 0)
            {
                throw new KernelImageException(
                    $"Lz4 payload block {block} is corrupt or decompresses past the declared size");
            }
            written += n;
            pos += (int)size;
            block++;
        }
        return written;
    }

    /// <summary>The .lzma ("LZMA alone") format: 5 property bytes, u64 uncompressed size (or -1), LZMA data.</summary>
    private static void DecodeLzmaAlone(ReadOnlySpan<byte> input, byte[] output)
    {
        if (input.Length < 13)
        {
            throw new KernelImageException("Lzma payload is truncated inside its 13-byte header");
        }
        long headerSize = BinaryPrimitives.ReadInt64LittleEndian(input[5..]);
        if (headerSize != -1 && headerSize != output.Length)
        {
            throw new KernelImageException(
                $"Lzma payload header declares {headerSize} bytes but its trailer declares {output.Length}");
        }
        byte[] data = input[13..].ToArray();
        ReadExact(LzmaStream.Create(input[..5].ToArray(), new MemoryStream(data, writable: false), data.Length,
            headerSize == -1 ? -1 : headerSize, leaveOpen: false), output, PayloadCompression.Lzma);
    }
}
