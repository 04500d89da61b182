using System.Buffers.Binary;
using System.Security.Cryptography;
using SharpCompress.Compressors.LZMA;

namespace Vmm.Core.Boot;

/// <summary>
/// Decoder for the .xz container as the kernel build writes it (scripts/xz_wrap.sh: <c>xz --check=crc32 --x86
/// --lzma2</c>): blocks with an optional x86 BCJ filter in front of LZMA2. LZMA2 decoding is SharpCompress's; the
/// container and the BCJ filter are done here because SharpCompress 0.48's XZStream applies its x86 filter to the
/// whole read buffer regardless of offset/count and without carrying state across reads, which corrupts kernel
/// payloads (observed: 8 wrong bytes per few MiB). Format: tukaani.org/xz/xz-file-format.txt.
/// </summary>
internal static class XzDecoder
{
    private const ulong FilterX86 = 0x04;
    private const ulong FilterLzma2 = 0x21;

    /// <summary>Decodes every block of the stream into <paramref name="output"/>; returns bytes produced.</summary>
    public static int Decode(ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (input.Length < 12 + 12)
        {
            throw Corrupt("the stream is shorter than its header and footer");
        }
        ReadOnlySpan<byte> flags = input.Slice(6, 2);
        if (flags[0] != 0 || (flags[1] & 0xF0) != 0 || Crc32.Compute(flags) != BinaryPrimitives.ReadUInt32LittleEndian(input[8..]))
        {
            throw Corrupt("bad stream header");
        }
        int checkType = flags[1] & 0x0F;
        int checkSize = checkType switch
        {
            0 => 0,
            1 => 4,
            4 => 8,
            10 => 32,
            _ => throw Corrupt($"unsupported integrity check type {checkType}"),
        };

        int pos = 12;
        int written = 0;
        while (true)
        {
            if (pos >= input.Length)
            {
                throw Corrupt("truncated before the index");
            }
            if (input[pos] == 0)
            {
                break; // index indicator: all blocks are done; block checks already verified the data
            }
            int headerSize = (input[pos] + 1) * 4;
            if (headerSize > input.Length - pos)
            {
                throw Corrupt("truncated block header");
            }
            ReadOnlySpan<byte> header = input.Slice(pos, headerSize);
            if (Crc32.Compute(header[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(header[^4..]))
            {
                throw Corrupt("block header checksum mismatch");
            }
            byte blockFlags = header[1];
            if ((blockFlags & 0x3C) != 0)
            {
                throw Corrupt("reserved block flags set");
            }
            int filterCount = (blockFlags & 0x03) + 1;
            int hp = 2;
            ulong? compressedSize = (blockFlags & 0x40) != 0 ? ReadVarint(header, ref hp) : null;
            ulong? uncompressedSize = (blockFlags & 0x80) != 0 ? ReadVarint(header, ref hp) : null;
            bool x86 = false;
            uint x86Start = 0;
            byte dictionaryProperty = 0;
            for (int f = 0; f < filterCount; f++)
            {
                ulong id = ReadVarint(header, ref hp);
                ulong propertySize = ReadVarint(header, ref hp);
                if (propertySize > (ulong)(header.Length - 4 - hp))
                {
                    throw Corrupt("filter properties run past the block header");
                }
                ReadOnlySpan<byte> properties = header.Slice(hp, (int)propertySize);
                hp += (int)propertySize;
                bool last = f == filterCount - 1;
                if (id == FilterX86 && !last && !x86 && (propertySize == 0 || propertySize == 4))
                {
                    x86 = true;
                    x86Start = propertySize == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(properties) : 0;
                }
                else if (id == FilterLzma2 && last && propertySize == 1 && properties[0] <= 40)
                {
                    dictionaryProperty = properties[0];
                }
                else
                {
                    throw Corrupt($"unsupported filter 0x{id:x} (only x86 BCJ followed by LZMA2 is supported)");
                }
            }

            int dataStart = pos + headerSize;
            (int lzma2Length, long lzma2Output) = MeasureLzma2(input[dataStart..], output.Length - written);
            if (compressedSize is { } cs && cs != (ulong)lzma2Length)
            {
                throw Corrupt("block compressed size does not match its LZMA2 data");
            }
            if (uncompressedSize is { } us && us != (ulong)lzma2Output)
            {
                throw Corrupt("block uncompressed size does not match its LZMA2 data");
            }
            Span<byte> blockOutput = output.Slice(written, (int)lzma2Output);
            DecodeLzma2(input.Slice(dataStart, lzma2Length), dictionaryProperty, blockOutput);
            if (x86)
            {
                X86BcjDecode(blockOutput, x86Start);
            }

            pos = dataStart + lzma2Length;
            while ((pos & 3) != 0)
            {
                if (pos >= input.Length || input[pos] != 0)
                {
                    throw Corrupt("bad block padding");
                }
                pos++;
            }
            if (checkSize > input.Length - pos)
            {
                throw Corrupt("truncated block check");
            }
            VerifyCheck(checkType, blockOutput, input.Slice(pos, checkSize));
            pos += checkSize;
            written += (int)lzma2Output;
        }
        return written;
    }

    /// <summary>
    /// Walks the LZMA2 chunk headers (control byte 0x00 = end, 0x01/0x02 = stored chunk, 0x80+ = LZMA chunk) to
    /// find where the block's data ends and how much it produces, without decoding. A total above
    /// <paramref name="room"/> means the payload is bigger than its declared size.
    /// </summary>
    private static (int Length, long Output) MeasureLzma2(ReadOnlySpan<byte> data, int room)
    {
        int pos = 0;
        long total = 0;
        while (true)
        {
            if (pos >= data.Length)
            {
                throw Corrupt("LZMA2 data is truncated");
            }
            byte control = data[pos];
            if (control == 0)
            {
                return (pos + 1, total);
            }
            int chunkHeader;
            long chunkOut;
            long chunkIn;
            if (control is 1 or 2)
            {
                if (data.Length - pos < 3)
                {
                    throw Corrupt("LZMA2 chunk header is truncated");
                }
                chunkHeader = 3;
                chunkOut = chunkIn = (data[pos + 1] << 8 | data[pos + 2]) + 1;
            }
            else if (control >= 0x80)
            {
                chunkHeader = ((control >> 5) & 3) >= 2 ? 6 : 5;
                if (data.Length - pos < chunkHeader)
                {
                    throw Corrupt("LZMA2 chunk header is truncated");
                }
                chunkOut = ((control & 0x1F) << 16 | data[pos + 1] << 8 | data[pos + 2]) + 1;
                chunkIn = (data[pos + 3] << 8 | data[pos + 4]) + 1;
            }
            else
            {
                throw Corrupt($"invalid LZMA2 control byte 0x{control:x2}");
            }
            if (chunkIn > data.Length - pos - chunkHeader)
            {
                throw Corrupt("LZMA2 chunk runs past the end of the stream");
            }
            pos += chunkHeader + (int)chunkIn;
            total += chunkOut;
            if (total > room)
            {
                throw new KernelImageException("Xz payload decompresses to more bytes than its trailer declares");
            }
        }
    }

    private static void DecodeLzma2(ReadOnlySpan<byte> data, byte dictionaryProperty, Span<byte> output)
    {
        byte[] copy = data.ToArray();
        using var decoder = LzmaStream.Create([dictionaryProperty], new MemoryStream(copy, writable: false), copy.Length,
            output.Length, presetDictionary: null, isLzma2: true, leaveOpen: false);
        int total = 0;
        while (total < output.Length)
        {
            int n = decoder.Read(output[total..]);
            if (n == 0)
            {
                throw Corrupt($"LZMA2 data ended after {total} of {output.Length} bytes");
            }
            total += n;
        }
    }

    /// <summary>
    /// Reverses the x86 BCJ filter over one whole block (the filter's state starts fresh per block). The encoder
    /// turned the rel32 operand of E8 (call) / E9 (jmp) into an absolute address when its top byte was 0x00 or 0xFF;
    /// a 5-bit history of recently seen E8/E9 bytes decides, as in the encoder, which candidates were converted.
    /// The last four bytes can never start a converted instruction and are left as they are.
    /// </summary>
    internal static void X86BcjDecode(Span<byte> buffer, uint startOffset)
    {
        // Indexed by (history >> 1) & 7: whether a candidate with that history may be converted.
        ReadOnlySpan<bool> allowed = [true, true, true, false, true, false, false, false];
        // Indexed by history >> 1: which operand byte the collision loop re-examines.
        ReadOnlySpan<byte> byteIndex = [0, 1, 2, 2, 3, 3, 3, 3];
        uint history = 0;
        uint previousPosition = unchecked(startOffset - 5);
        if (buffer.Length < 5)
        {
            return;
        }
        int limit = buffer.Length - 5;
        int i = 0;
        while (i <= limit)
        {
            byte opcode = buffer[i];
            if (opcode != 0xE8 && opcode != 0xE9)
            {
                i++;
                continue;
            }
            uint position = unchecked(startOffset + (uint)i);
            uint distance = unchecked(position - previousPosition);
            previousPosition = position;
            if (distance > 5)
            {
                history = 0;
            }
            else
            {
                for (uint k = 0; k < distance; k++)
                {
                    history = (history & 0x77) << 1;
                }
            }
            byte top = buffer[i + 4];
            if (IsSignByte(top) && allowed[(int)((history >> 1) & 7)] && (history >> 1) < 0x10)
            {
                uint value = BinaryPrimitives.ReadUInt32LittleEndian(buffer.Slice(i + 1, 4));
                uint result;
                while (true)
                {
                    result = unchecked(value - (position + 5));
                    if (history == 0)
                    {
                        break;
                    }
                    int shift = 24 - byteIndex[(int)(history >> 1)] * 8;
                    if (!IsSignByte((byte)(result >> shift)))
                    {
                        break;
                    }
                    value = result ^ ((1u << (shift + 8)) - 1);
                }
                // Bit 24 of the result decides the top byte: sign-extend it to 0x00 or 0xFF.
                result = (result & 0x00FF_FFFF) | (((result >> 24) & 1) != 0 ? 0xFF00_0000u : 0);
                BinaryPrimitives.WriteUInt32LittleEndian(buffer.Slice(i + 1, 4), result);
                i += 5;
                history = 0;
            }
            else
            {
                i++;
                history |= 1;
                if (IsSignByte(top))
                {
                    history |= 0x10;
                }
            }
        }
    }

    private static bool IsSignByte(byte b) => b == 0x00 || b == 0xFF;

    private static void VerifyCheck(int checkType, ReadOnlySpan<byte> data, ReadOnlySpan<byte> stored)
    {
        bool ok = checkType switch
        {
            0 => true,
            1 => Crc32.Compute(data) == BinaryPrimitives.ReadUInt32LittleEndian(stored),
            4 => Crc64.Compute(data) == BinaryPrimitives.ReadUInt64LittleEndian(stored),
            _ => SHA256.HashData(data).AsSpan().SequenceEqual(stored),
        };
        if (!ok)
        {
            throw Corrupt("block integrity check failed");
        }
    }

    private static ulong ReadVarint(ReadOnlySpan<byte> header, ref int pos)
    {
        ulong value = 0;
        for (int i = 0; i < 9; i++)
        {
            if (pos >= header.Length - 4)
            {
                throw Corrupt("block header field runs past the header");
            }
            byte b = header[pos++];
            value |= (ulong)(b & 0x7F) << (i * 7);
            if ((b & 0x80) == 0)
            {
                if (b == 0 && i > 0)
                {
                    throw Corrupt("non-minimal integer in block header");
                }
                return value;
            }
        }
        throw Corrupt("integer in block header is too long");
    }

    private static KernelImageException Corrupt(string why) => new($"Xz payload is corrupt: {why}");

    /// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as xz uses for headers and CRC32 checks.</summary>
    internal static class Crc32
    {
        private static readonly uint[] Table = BuildTable();

        public static uint Compute(ReadOnlySpan<byte> data)
        {
            uint crc = 0xFFFF_FFFF;
            foreach (byte b in data)
            {
                crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            }
            return ~crc;
        }

        private static uint[] BuildTable()
        {
            var table = new uint[256];
            for (uint i = 0; i < 256; i++)
            {
                uint c = i;
                for (int k = 0; k < 8; k++)
                {
                    c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1;
                }
                table[i] = c;
            }
            return table;
        }
    }

    /// <summary>CRC-64 (ECMA-182, reflected polynomial 0xC96C5795D7870F42), xz's CRC64 check.</summary>
    internal static class Crc64
    {
        private static readonly ulong[] Table = BuildTable();

        public static ulong Compute(ReadOnlySpan<byte> data)
        {
            ulong crc = ulong.MaxValue;
            foreach (byte b in data)
            {
                crc = Table[(int)((crc ^ b) & 0xFF)] ^ (crc >> 8);
            }
            return ~crc;
        }

        private static ulong[] BuildTable()
        {
            var table = new ulong[256];
            for (ulong i = 0; i < 256; i++)
            {
                ulong c = i;
                for (int k = 0; k < 8; k++)
                {
                    c = (c & 1) != 0 ? 0xC96C_5795_D787_0F42 ^ (c >> 1) : c >> 1;
                }
                table[i] = c;
            }
            return table;
        }
    }
}
