using System.Buffers.Binary;
using Vmm.Core.Boot;
using Xunit.Abstractions;

namespace Vmm.Core.Tests.Boot;

public sealed class PayloadDecompressorTests(ITestOutputHelper output)
{
    public static TheoryData<PayloadCompression> Formats =>
    [
        PayloadCompression.Gzip, PayloadCompression.Zstd, PayloadCompression.Xz, PayloadCompression.Lz4,
        PayloadCompression.Lzma, PayloadCompression.Bzip2,
    ];

    [Theory]
    [MemberData(nameof(Formats))]
    public void EveryFormat_RoundTripsThroughABzImage(PayloadCompression format)
    {
        byte[] elf = TestElf.Kernel(pvh: true);
        byte[] payload = KernelCompressors.Compress(format, elf, out string how);
        output.WriteLine($"{format}: compressed with {how}, {elf.Length} -> {payload.Length} bytes");
        byte[] bz = TestBzImage.Build(payload);

        BzImageHeader header = BzImageHeader.Parse(bz);
        byte[] result = PayloadDecompressor.Decompress(header.Payload(bz), out PayloadCompression detected);

        Assert.Equal(format, detected);
        Assert.Equal(elf, result);
    }

    [Fact]
    public void Lz4_MultipleLegacyBlocks_AreConcatenated()
    {
        // More than one 8 MiB legacy block, the case a real kernel hits.
        byte[] data = TestElf.Pattern((9 << 20) + 12345, 7);
        byte[] payload = KernelCompressors.Compress(PayloadCompression.Lz4, data, out string how);
        output.WriteLine($"lz4 via {how}");
        Assert.Equal(data, PayloadDecompressor.Decompress(payload, out _));
    }

    [Fact]
    public void Xz_X86BcjFilter_OnRealMachineCode()
    {
        // The BCJ filter only matters on real x86 code (E8/E9 rel32 operands); the runtime's own native library is
        // x86-64 machine code present wherever these tests run.
        string lib = Path.Combine(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "libcoreclr.so");
        Assert.True(File.Exists(lib), $"{lib} missing");
        byte[] code = File.ReadAllBytes(lib);
        code = code[..Math.Min(code.Length, 3 << 20)];
        byte[]? xz = KernelCompressors.RunTool("xz", "--check=crc64 --threads=1 --x86 --lzma2=dict=1MiB -c", code);
        if (xz is null)
        {
            output.WriteLine("xz(1) not installed: BCJ round trip tested with the stored-chunk encoder only");
            xz = KernelCompressors.StoredXz(code);
        }
        var payload = new byte[xz.Length + 4];
        xz.CopyTo(payload, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(xz.Length), (uint)code.Length);

        Assert.Equal(code, PayloadDecompressor.Decompress(payload, out _));
    }

    [Fact]
    public void X86Bcj_DecodesWhatTheEncoderConverted()
    {
        // Hand-made: a call at offset 0x10 to absolute 0x1234 (as the encoder stores it) must come back as rel32
        // 0x1234 - (0x10 + 5); a byte pair that is not a candidate stays as is.
        var buffer = new byte[0x40];
        buffer[0x10] = 0xE8;
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(0x11), 0x1234);
        buffer[0x30] = 0xE8;
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(0x31), 0x1234_5678); // top byte 0x12: not converted
        XzDecoder.X86BcjDecode(buffer, 0);
        Assert.Equal(0x1234u - 0x15u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(0x11)));
        Assert.Equal(0x1234_5678u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(0x31)));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void CorruptPayload_IsAKernelImageException(PayloadCompression format)
    {
        byte[] data = TestElf.Kernel(pvh: false);
        byte[] payload = KernelCompressors.Compress(format, data, out _);
        // Damage the middle of the stream, keep magic and trailer.
        for (int i = payload.Length / 3; i < payload.Length / 3 + 64 && i < payload.Length - 8; i++)
        {
            payload[i] ^= 0x5A;
        }
        var e = Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(payload, out _));
        output.WriteLine($"{format}: {e.Message}");
        Assert.Contains(format.ToString(), e.Message);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void TrailerSmallerThanData_IsRejected(PayloadCompression format)
    {
        byte[] data = TestElf.Pattern(200_000, 3);
        byte[] payload = KernelCompressors.Compress(format, data, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(payload.Length - 4), 100_000);
        var e = Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(payload, out _));
        output.WriteLine($"{format}: {e.Message}");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void TrailerLargerThanData_IsRejected(PayloadCompression format)
    {
        byte[] data = TestElf.Pattern(200_000, 4);
        byte[] payload = KernelCompressors.Compress(format, data, out _);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(payload.Length - 4), 300_000);
        var e = Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(payload, out _));
        output.WriteLine($"{format}: {e.Message}");
    }

    [Fact]
    public void DecompressionBomb_IsRejectedBeforeDecompressing()
    {
        byte[] payload = KernelCompressors.Compress(PayloadCompression.Zstd, TestElf.Pattern(1000, 5), out _);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(payload.Length - 4), 0xFFFF_FFF0);
        var e = Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(payload, out _));
        Assert.Contains("limit", e.Message);

        byte[] ok = KernelCompressors.Compress(PayloadCompression.Zstd, TestElf.Pattern(1 << 20, 5), out _);
        Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(ok, out _, maxSize: 1 << 19));
    }

    [Fact]
    public void UnknownFormat_NamesTheBytes()
    {
        var e = Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress([1, 2, 3, 4, 5, 6, 7, 8], out _));
        Assert.Contains("unknown compression", e.Message);
        Assert.Contains("010203", e.Message);
    }

    [Fact]
    public void UncompressedElfPayload_IsReturnedAsIs()
    {
        byte[] elf = TestElf.Kernel(pvh: false);
        Assert.Equal(elf, PayloadDecompressor.Decompress(elf, out PayloadCompression c));
        Assert.Equal(PayloadCompression.None, c);
    }

    [Fact]
    public void Lz4_TruncatedBlock_IsRejected()
    {
        byte[] payload = KernelCompressors.Compress(PayloadCompression.Lz4, TestElf.Pattern(100_000, 6), out _);
        byte[] cut = [.. payload.AsSpan(0, payload.Length / 2), .. payload.AsSpan(payload.Length - 4)];
        Assert.Throws<KernelImageException>(() => PayloadDecompressor.Decompress(cut, out _));
    }
}
