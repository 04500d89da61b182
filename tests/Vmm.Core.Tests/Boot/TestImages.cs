using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using K4os.Compression.LZ4;
using SharpCompress.Compressors.BZip2;
using SharpCompress.Compressors.LZMA;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

/// <summary>A PT_LOAD segment for <see cref="TestElf.Build"/>.</summary>
internal sealed record TestSegment(ulong PhysicalAddress, ulong VirtualAddress, byte[] Data, ulong MemorySize);

/// <summary>Builds small but real ELF64 x86_64 executables, optionally with PT_NOTE records.</summary>
internal static class TestElf
{
    public static byte[] Build(IReadOnlyList<TestSegment> segments, ulong entry, byte[]? notes = null, ulong noteAlign = 4,
        byte elfClass = 2, byte dataEncoding = 1, ushort machine = 0x3E, ushort type = 2)
    {
        int phnum = segments.Count + (notes is null ? 0 : 1);
        int pos = 64 + phnum * 56;
        int notesOffset = pos;
        pos += notes?.Length ?? 0;
        var offsets = new int[segments.Count];
        for (int i = 0; i < segments.Count; i++)
        {
            pos = (pos + 15) & ~15;
            offsets[i] = pos;
            pos += segments[i].Data.Length;
        }
        var file = new byte[pos];
        Span<byte> f = file;
        f[0] = 0x7F; f[1] = (byte)'E'; f[2] = (byte)'L'; f[3] = (byte)'F';
        f[4] = elfClass; f[5] = dataEncoding; f[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(f[16..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(f[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(f[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(f[24..], entry);
        BinaryPrimitives.WriteUInt64LittleEndian(f[32..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(f[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(f[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(f[56..], (ushort)phnum);
        int ph = 64;
        for (int i = 0; i < segments.Count; i++, ph += 56)
        {
            TestSegment s = segments[i];
            WritePhdr(f[ph..], 1, (ulong)offsets[i], s.VirtualAddress, s.PhysicalAddress, (ulong)s.Data.Length, s.MemorySize, 0x200000);
            s.Data.CopyTo(f[offsets[i]..]);
        }
        if (notes is not null)
        {
            WritePhdr(f[ph..], 4, (ulong)notesOffset, 0, 0, (ulong)notes.Length, (ulong)notes.Length, noteAlign);
            notes.CopyTo(f[notesOffset..]);
        }
        return file;
    }

    public static void WritePhdr(Span<byte> p, uint type, ulong offset, ulong vaddr, ulong paddr, ulong filesz, ulong memsz, ulong align)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], 7);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], filesz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], memsz);
        BinaryPrimitives.WriteUInt64LittleEndian(p[48..], align);
    }

    /// <summary>One ELF note record: namesz, descsz, type, name (NUL-terminated, padded), desc (padded).</summary>
    public static byte[] Note(string name, uint type, byte[] desc, int align = 4, bool nulTerminate = true)
    {
        byte[] nameBytes = System.Text.Encoding.ASCII.GetBytes(nulTerminate ? name + "\0" : name);
        int nameSpan = (nameBytes.Length + align - 1) / align * align;
        int descSpan = (desc.Length + align - 1) / align * align;
        var note = new byte[12 + nameSpan + descSpan];
        BinaryPrimitives.WriteUInt32LittleEndian(note, (uint)nameBytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(4), (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(note.AsSpan(8), type);
        nameBytes.CopyTo(note, 12);
        desc.CopyTo(note, 12 + nameSpan);
        return note;
    }

    public static byte[] PvhNote(ulong entry, int descSize = 4, int align = 4)
    {
        var desc = new byte[descSize];
        if (descSize == 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(desc, entry);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(desc, (uint)entry);
        }
        return Note("Xen", ElfKernel.XenElfNotePhys32Entry, desc, align);
    }

    /// <summary>Deterministic pseudo-random, mildly compressible bytes.</summary>
    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        var rng = new Random(seed);
        for (int i = 0; i < length; i++)
        {
            data[i] = (i % 7 == 0) ? (byte)rng.Next(256) : (byte)(i * 13 + seed);
        }
        return data;
    }

    /// <summary>A vmlinux-like kernel: text at 16 MiB (virtual 0xffffffff81000000), data+bss after it, PVH note.</summary>
    public static byte[] Kernel(bool pvh, int textSize = 0x30000, int dataSize = 0x8000, ulong bssSize = 0x20000)
    {
        const ulong phys = 0x100_0000, virt = 0xFFFF_FFFF_8100_0000;
        ulong dataPhys = phys + 0x20_0000;
        var segments = new List<TestSegment>
        {
            new(phys, virt, Pattern(textSize, 1), (ulong)textSize),
            new(dataPhys, virt + 0x20_0000, Pattern(dataSize, 2), (ulong)dataSize + bssSize),
        };
        return Build(segments, entry: phys + 0x40, notes: pvh ? PvhNote(phys + 0x100) : null);
    }
}

/// <summary>Wraps a payload in a synthetic bzImage: real-mode setup sectors with a setup header, then the
/// protected-mode part (a fake decompressor stub, the payload, some trailing bytes).</summary>
internal static class TestBzImage
{
    public const int StubSize = 0x400;

    public static byte[] Build(byte[] payload, int setupSects = 4, ushort version = 0x020F, uint cmdlineSize = 2047,
        uint initrdAddrMax = 0x7FFF_FFFF, byte loadFlags = 1, uint? payloadOffset = null, uint? payloadLength = null,
        uint initSize = 0x80_0000)
    {
        int setupSize = ((setupSects == 0 ? 4 : setupSects) + 1) * 512;
        var file = new byte[setupSize + StubSize + payload.Length + 64];
        Span<byte> f = file;
        f[0x1F1] = (byte)setupSects;
        BinaryPrimitives.WriteUInt16LittleEndian(f[0x1FE..], 0xAA55);
        f[0x200] = 0xEB;
        f[0x201] = 0x6A; // header ends at 0x26C (kernel_info_offset included)
        "HdrS"u8.CopyTo(f[0x202..]);
        BinaryPrimitives.WriteUInt16LittleEndian(f[0x206..], version);
        f[0x211] = loadFlags;
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x214..], 0x10_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x22C..], initrdAddrMax);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x230..], 0x20_0000);
        f[0x234] = 1;
        f[0x235] = 21;
        BinaryPrimitives.WriteUInt16LittleEndian(f[0x236..], 0x3);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x238..], cmdlineSize);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x248..], payloadOffset ?? StubSize);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x24C..], payloadLength ?? (uint)payload.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(f[0x258..], 0x100_0000);
        BinaryPrimitives.WriteUInt32LittleEndian(f[0x260..], initSize);
        for (int i = 0; i < StubSize; i++)
        {
            f[setupSize + i] = 0x90; // "decompressor": nops
        }
        payload.CopyTo(f[(setupSize + StubSize)..]);
        return file;
    }
}

/// <summary>Compresses like the kernel build does — with the command-line tools when present (the real encoders),
/// else with library encoders — and appends the 4-byte size (gzip carries it already).</summary>
internal static class KernelCompressors
{
    public static byte[] Compress(PayloadCompression format, byte[] data, out string how)
    {
        (string tool, string args) = format switch
        {
            PayloadCompression.Gzip => ("gzip", "-n -9 -c"),
            PayloadCompression.Zstd => ("zstd", "-19 -q -c"),
            PayloadCompression.Xz => ("xz", "--check=crc32 --threads=1 --x86 --lzma2=dict=8MiB -c"),
            PayloadCompression.Lz4 => ("lz4", "-l -9 -c"),
            PayloadCompression.Lzma => ("lzma", "-9 -c"),
            PayloadCompression.Bzip2 => ("bzip2", "-9 -c"),
            _ => throw new ArgumentOutOfRangeException(nameof(format)),
        };
        byte[]? compressed = RunTool(tool, args, data);
        how = compressed is not null ? $"{tool} {args}" : "library encoder";
        compressed ??= LibraryCompress(format, data);
        if (format == PayloadCompression.Gzip)
        {
            return compressed;
        }
        var withSize = new byte[compressed.Length + 4];
        compressed.CopyTo(withSize, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(withSize.AsSpan(compressed.Length), (uint)data.Length);
        return withSize;
    }

    public static byte[]? RunTool(string tool, string args, byte[] input)
    {
        try
        {
            var psi = new ProcessStartInfo(tool, args)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using Process p = Process.Start(psi)!;
            var output = new MemoryStream();
            Task copy = p.StandardOutput.BaseStream.CopyToAsync(output);
            Task<string> err = p.StandardError.ReadToEndAsync();
            p.StandardInput.BaseStream.Write(input);
            p.StandardInput.Close();
            copy.Wait();
            p.WaitForExit();
            _ = err.Result;
            return p.ExitCode == 0 ? output.ToArray() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // tool not installed
        }
    }

    private static byte[] LibraryCompress(PayloadCompression format, byte[] data)
    {
        var ms = new MemoryStream();
        switch (format)
        {
            case PayloadCompression.Gzip:
                using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true))
                {
                    gz.Write(data);
                }
                return ms.ToArray();
            case PayloadCompression.Zstd:
                return new ZstdSharp.Compressor(19).Wrap(data).ToArray();
            case PayloadCompression.Lz4:
                ms.Write([0x02, 0x21, 0x4C, 0x18]);
                Span<byte> size = stackalloc byte[4];
                for (int off = 0; off < data.Length; off += 8 << 20)
                {
                    int n = Math.Min(8 << 20, data.Length - off);
                    var block = new byte[LZ4Codec.MaximumOutputSize(n)];
                    int c = LZ4Codec.Encode(data.AsSpan(off, n), block, LZ4Level.L09_HC);
                    BinaryPrimitives.WriteUInt32LittleEndian(size, (uint)c);
                    ms.Write(size);
                    ms.Write(block, 0, c);
                }
                return ms.ToArray();
            case PayloadCompression.Bzip2:
                using (var bz = BZip2Stream.Create(ms, SharpCompress.Compressors.CompressionMode.Compress, false, leaveOpen: true))
                {
                    bz.Write(data);
                    bz.Finish();
                }
                return ms.ToArray();
            case PayloadCompression.Lzma:
            {
                var body = new MemoryStream();
                byte[] props;
                using (var lz = LzmaStream.Create(new LzmaEncoderProperties(eos: true, dictionary: 1 << 20), false, body))
                {
                    lz.Write(data);
                    props = lz.Properties;
                }
                ms.Write(props);
                Span<byte> unknown = stackalloc byte[8];
                unknown.Fill(0xFF);
                ms.Write(unknown);
                ms.Write(body.ToArray());
                return ms.ToArray();
            }
            case PayloadCompression.Xz:
                return StoredXz(data);
            default:
                throw new ArgumentOutOfRangeException(nameof(format));
        }
    }

    /// <summary>A valid .xz stream whose single block holds LZMA2 "stored" chunks (no xz encoder in the libraries).</summary>
    public static byte[] StoredXz(byte[] data)
    {
        var ms = new MemoryStream();
        byte[] streamFlags = [0x00, 0x01]; // CRC32 check
        ms.Write([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]);
        ms.Write(streamFlags);
        WriteU32(ms, Crc32(streamFlags));
        // Block header: size byte, flags (1 filter), filter LZMA2 id 0x21, props size 1, dict prop, padding, CRC32.
        byte[] header = [0x02, 0x00, 0x21, 0x01, 0x16, 0x00, 0x00, 0x00];
        ms.Write(header);
        WriteU32(ms, Crc32(header));
        long start = ms.Position;
        for (int off = 0; off < data.Length; off += 0x10000)
        {
            int n = Math.Min(0x10000, data.Length - off);
            ms.WriteByte(off == 0 ? (byte)1 : (byte)2);
            ms.WriteByte((byte)((n - 1) >> 8));
            ms.WriteByte((byte)(n - 1));
            ms.Write(data, off, n);
        }
        ms.WriteByte(0);
        while (((ms.Position - start) & 3) != 0)
        {
            ms.WriteByte(0);
        }
        WriteU32(ms, Crc32(data));
        // Index and footer are not read by the decoder but keep the stream well-formed enough for xz(1) too.
        ms.Write([0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        ms.Write([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x59, 0x5A]);
        return ms.ToArray();
    }

    private static void WriteU32(Stream s, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        s.Write(b);
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFF_FFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1;
            }
        }
        return ~crc;
    }
}
