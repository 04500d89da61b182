using System.Buffers.Binary;
using System.IO.Compression;

namespace Vmm.Core.Boot;

/// <summary>
/// The header of a Linux arm64 <c>Image</c> (Documentation/arch/arm64/booting.rst): where the kernel wants to sit
/// relative to a 2 MiB-aligned base, how much memory it occupies from there (BSS included), and its flags. The start
/// of the arm64 port (issue 12): today it lets <c>vmm</c> recognise an arm64 kernel, and say so, on an x86_64 host.
/// </summary>
public readonly record struct Arm64ImageHeader(ulong TextOffset, ulong ImageSize, ulong Flags)
{
    /// <summary>The header is 64 bytes; "ARM\x64" sits at offset 56.</summary>
    public const int Size = 64;
    private const uint Magic = 0x644D5241;

    /// <summary>Images without image_size (before Linux 3.17) assume this text_offset.</summary>
    public const ulong LegacyTextOffset = 0x80000;

    /// <summary>The kernel must start this far into a 2 MiB-aligned region.</summary>
    public const ulong BaseAlignment = 2UL << 20;

    /// <summary>Bit 0 of flags: a big-endian kernel.</summary>
    public bool IsBigEndian => (Flags & 1) != 0;

    /// <summary>Bits 1–2 of flags: the kernel's page size in KiB (0 when unspecified).</summary>
    public uint PageSizeKiB => ((Flags >> 1) & 3) switch { 1 => 4, 2 => 16, 3 => 64, _ => 0 };

    /// <summary>True when the file starts with an arm64 Image header.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> file) =>
        file.Length >= Size && BinaryPrimitives.ReadUInt32LittleEndian(file[56..]) == Magic;

    /// <summary>Reads and checks the header; throws <see cref="KernelImageException"/> with one sentence.</summary>
    public static Arm64ImageHeader Parse(ReadOnlySpan<byte> file)
    {
        if (!HasMagic(file))
        {
            throw new KernelImageException("not an arm64 Image: no \"ARM\\x64\" magic at offset 56");
        }
        ulong textOffset = BinaryPrimitives.ReadUInt64LittleEndian(file[8..]);
        ulong imageSize = BinaryPrimitives.ReadUInt64LittleEndian(file[16..]);
        ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(file[24..]);
        if (imageSize == 0)
        {
            // A kernel older than 3.17: the size is the file's, the offset the historical one.
            (textOffset, imageSize) = (LegacyTextOffset, (ulong)file.Length);
        }
        var header = new Arm64ImageHeader(textOffset, imageSize, flags);
        if (header.IsBigEndian)
        {
            throw new KernelImageException("the arm64 Image is a big-endian kernel; only little-endian kernels are supported");
        }
        if (imageSize < (ulong)file.Length || textOffset >= BaseAlignment || textOffset % 4096 != 0)
        {
            throw new KernelImageException($"the arm64 Image header is inconsistent (text_offset 0x{textOffset:x}, image_size 0x{imageSize:x}, file 0x{file.Length:x} bytes)");
        }
        return header;
    }

    /// <summary>Where the kernel goes in RAM from <paramref name="ramStart"/> of <paramref name="ramSize"/> bytes:
    /// the first 2 MiB-aligned base plus text_offset; throws <see cref="BootException"/> when the image (BSS included)
    /// does not fit.</summary>
    public ulong LoadAddress(ulong ramStart, ulong ramSize)
    {
        ulong bas = (ramStart + BaseAlignment - 1) & ~(BaseAlignment - 1);
        ulong load = bas + TextOffset;
        if (load < ramStart || load - ramStart > ramSize || ramStart + ramSize - load < ImageSize)
        {
            throw new BootException($"the arm64 kernel needs 0x{ImageSize:x} bytes from 0x{load:x}, beyond guest RAM");
        }
        return load;
    }
}

/// <summary>The instruction set a kernel file is built for.</summary>
public enum KernelArchitecture { Unknown, X86_64, Arm64 }

/// <summary>Tells, from a kernel file's content, which architecture it is for: ELF machine, bzImage, arm64 Image
/// (plain or gzip-compressed, Debian's arm64 <c>vmlinuz</c>), or an EFI zboot image (an arm64 PE whose payload is
/// compressed).</summary>
public static class KernelFiles
{
    public static KernelArchitecture DetectArchitecture(ReadOnlySpan<byte> file)
    {
        if (ElfKernel.HasElfMagic(file) && file.Length >= 20)
        {
            return BinaryPrimitives.ReadUInt16LittleEndian(file[18..]) switch
            {
                ElfKernel.MachineX86_64 => KernelArchitecture.X86_64,
                ElfKernel.MachineAarch64 => KernelArchitecture.Arm64,
                _ => KernelArchitecture.Unknown,
            };
        }
        if (BzImageHeader.HasSignature(file))
        {
            return KernelArchitecture.X86_64;
        }
        if (Arm64ImageHeader.HasMagic(file))
        {
            return KernelArchitecture.Arm64;
        }
        // EFI zboot (CONFIG_EFI_ZBOOT): "MZ", then "zimg" at offset 4.
        if (file.Length >= 8 && file[0] == (byte)'M' && file[1] == (byte)'Z' && file[4..8].SequenceEqual("zimg"u8))
        {
            return KernelArchitecture.Arm64;
        }
        if (PayloadDecompressor.Detect(file) == PayloadCompression.Gzip && Arm64ImageHeader.HasMagic(GunzipHead(file)))
        {
            return KernelArchitecture.Arm64;
        }
        return KernelArchitecture.Unknown;
    }

    // The first bytes of a gzip stream (enough for a kernel header), or empty when it does not decompress.
    private static byte[] GunzipHead(ReadOnlySpan<byte> file)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(file.ToArray(), writable: false), CompressionMode.Decompress);
            byte[] head = new byte[Arm64ImageHeader.Size];
            gzip.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            return head;
        }
        catch (InvalidDataException)
        {
            return [];
        }
    }
}
