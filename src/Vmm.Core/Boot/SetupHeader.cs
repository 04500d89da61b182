using System.Buffers.Binary;

namespace Vmm.Core.Boot;

/// <summary>
/// Offsets of the x86 boot protocol's <c>struct setup_header</c> fields and of the <c>struct boot_params</c>
/// ("zero page") fields we use, from arch/x86/include/uapi/asm/bootparam.h. The setup header sits at 0x1F1 both in
/// a bzImage file and in boot_params, so the same absolute offsets serve for parsing and for writing.
/// </summary>
public static class BootParamsLayout
{
    public const int Size = 0x1000;

    // boot_params outside the setup header.
    public const int ExtRamdiskImage = 0x0C0;
    public const int ExtRamdiskSize = 0x0C4;
    public const int ExtCmdLinePtr = 0x0C8;
    public const int E820Entries = 0x1E8;
    public const int Sentinel = 0x1EF;
    public const int E820Table = 0x2D0;
    public const int E820EntrySize = 20;
    public const int E820MaxEntries = 128;

    // struct setup_header, absolute offsets.
    public const int SetupHeader = 0x1F1;
    public const int SetupSects = 0x1F1;
    public const int BootFlag = 0x1FE;
    public const int Jump = 0x200;
    public const int Header = 0x202;
    public const int Version = 0x206;
    public const int TypeOfLoader = 0x210;
    public const int LoadFlags = 0x211;
    public const int Code32Start = 0x214;
    public const int RamdiskImage = 0x218;
    public const int RamdiskSize = 0x21C;
    public const int HeapEndPtr = 0x224;
    public const int CmdLinePtr = 0x228;
    public const int InitrdAddrMax = 0x22C;
    public const int KernelAlignment = 0x230;
    public const int RelocatableKernel = 0x234;
    public const int MinAlignment = 0x235;
    public const int XLoadFlags = 0x236;
    public const int CmdlineSize = 0x238;
    public const int PayloadOffset = 0x248;
    public const int PayloadLength = 0x24C;
    public const int SetupData = 0x250;
    public const int PrefAddress = 0x258;
    public const int InitSize = 0x260;
    /// <summary>End of the setup_header part of boot_params (the next field, edd_mbr_sig_buffer, is at 0x290).</summary>
    public const int SetupHeaderLimit = 0x290;

    public const ushort BootFlagMagic = 0xAA55;
    /// <summary>"HdrS" read as a little-endian u32.</summary>
    public const uint HeaderMagic = 0x53726448;
    /// <summary>type_of_loader 0xFF: "undefined" boot loader (what every VMM uses).</summary>
    public const byte LoaderTypeUndefined = 0xFF;
    public const byte LoadedHigh = 1 << 0;
    public const ushort XlfKernel64 = 1 << 0;
    public const ushort XlfCanBeLoadedAbove4G = 1 << 1;
}

/// <summary>
/// The setup header of a bzImage, parsed and validated. Created only by <see cref="Parse"/>, so every instance
/// describes a file whose setup area and (for protocol 2.08+) payload lie inside the file.
/// </summary>
public sealed class BzImageHeader
{
    /// <summary>The oldest boot protocol we accept: 2.06 introduced cmdline_size; older kernels are pre-2.6.22.</summary>
    public const ushort MinimumVersion = 0x0206;

    private BzImageHeader() { }

    /// <summary>Boot protocol version, e.g. 0x020F for 2.15.</summary>
    public ushort Version { get; private init; }
    /// <summary>Setup sectors (0 in the file means 4).</summary>
    public int SetupSectors { get; private init; }
    /// <summary>Bytes of real-mode setup code, boot sector included: (setup_sects + 1) * 512. The protected-mode
    /// kernel starts at this file offset.</summary>
    public int SetupSize => (SetupSectors + 1) * 512;
    public byte LoadFlags { get; private init; }
    public uint Code32Start { get; private init; }
    /// <summary>Highest byte address the initrd may occupy (0x37FFFFFF before protocol 2.03).</summary>
    public uint InitrdAddrMax { get; private init; }
    public uint KernelAlignment { get; private init; }
    public bool Relocatable { get; private init; }
    public ushort XLoadFlags { get; private init; }
    /// <summary>Maximum command-line length without the terminating NUL.</summary>
    public uint CmdlineSize { get; private init; }
    /// <summary>Payload offset relative to the protected-mode code (protocol 2.08+; 0 before).</summary>
    public uint PayloadOffset { get; private init; }
    public uint PayloadLength { get; private init; }
    /// <summary>Preferred load address of the protected-mode kernel (2.10+; 0 before).</summary>
    public ulong PrefAddress { get; private init; }
    /// <summary>Linear memory the kernel needs from its load address while it initialises (2.10+; 0 before).</summary>
    public uint InitSize { get; private init; }
    /// <summary>File offset one past the setup header (0x202 + the byte at 0x201), clamped to boot_params' header area.</summary>
    public int HeaderEnd { get; private init; }

    public bool HasPayloadFields => Version >= 0x0208;

    /// <summary>Whether <paramref name="file"/> carries the "HdrS" signature at 0x202.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> file) =>
        file.Length >= BootParamsLayout.Header + 4 &&
        BinaryPrimitives.ReadUInt32LittleEndian(file[BootParamsLayout.Header..]) == BootParamsLayout.HeaderMagic;

    /// <summary>Parses and validates the setup header; throws <see cref="KernelImageException"/> with one sentence.</summary>
    public static BzImageHeader Parse(ReadOnlySpan<byte> file)
    {
        if (!HasSignature(file))
        {
            throw new KernelImageException("not a bzImage: no 'HdrS' signature at offset 0x202");
        }
        if (file.Length < BootParamsLayout.InitSize + 4)
        {
            throw new KernelImageException($"bzImage is truncated: {file.Length} bytes, too short to hold its setup header");
        }
        ushort version = U16(file, BootParamsLayout.Version);
        if (version < MinimumVersion)
        {
            throw new KernelImageException(
                $"bzImage boot protocol {version >> 8}.{version & 0xFF:D2} is too old; at least 2.06 (Linux 2.6.22) is required");
        }
        byte loadFlags = file[BootParamsLayout.LoadFlags];
        if ((loadFlags & BootParamsLayout.LoadedHigh) == 0)
        {
            throw new KernelImageException("zImage (kernel loaded below 1 MiB) is not supported; use a bzImage");
        }
        int setupSects = file[BootParamsLayout.SetupSects];
        if (setupSects == 0)
        {
            setupSects = 4; // boot.rst: "if this field is 0, the real value is 4"
        }
        int setupSize = (setupSects + 1) * 512;
        if (setupSize >= file.Length)
        {
            throw new KernelImageException(
                $"bzImage is truncated: its setup code claims {setupSize} bytes but the file has {file.Length}");
        }
        int headerEnd = Math.Min(BootParamsLayout.Jump + 2 + file[BootParamsLayout.Jump + 1], BootParamsLayout.SetupHeaderLimit);
        uint payloadOffset = 0, payloadLength = 0;
        if (version >= 0x0208)
        {
            payloadOffset = U32(file, BootParamsLayout.PayloadOffset);
            payloadLength = U32(file, BootParamsLayout.PayloadLength);
            ulong protectedModeSize = (ulong)(file.Length - setupSize);
            if (payloadLength < 4 || payloadOffset > protectedModeSize || payloadLength > protectedModeSize - payloadOffset)
            {
                throw new KernelImageException(
                    $"bzImage payload (offset 0x{payloadOffset:x}, length {payloadLength}) lies outside the " +
                    $"{protectedModeSize}-byte protected-mode image");
            }
        }
        return new BzImageHeader
        {
            Version = version,
            SetupSectors = setupSects,
            LoadFlags = loadFlags,
            Code32Start = U32(file, BootParamsLayout.Code32Start),
            InitrdAddrMax = version >= 0x0203 ? U32(file, BootParamsLayout.InitrdAddrMax) : 0x37FF_FFFF,
            KernelAlignment = U32(file, BootParamsLayout.KernelAlignment),
            Relocatable = file[BootParamsLayout.RelocatableKernel] != 0,
            XLoadFlags = version >= 0x020C ? U16(file, BootParamsLayout.XLoadFlags) : (ushort)0,
            CmdlineSize = U32(file, BootParamsLayout.CmdlineSize),
            PayloadOffset = payloadOffset,
            PayloadLength = payloadLength,
            PrefAddress = version >= 0x020A ? BinaryPrimitives.ReadUInt64LittleEndian(file[BootParamsLayout.PrefAddress..]) : 0,
            InitSize = version >= 0x020A ? U32(file, BootParamsLayout.InitSize) : 0,
            HeaderEnd = headerEnd,
        };
    }

    /// <summary>The protected-mode kernel: everything after the real-mode setup sectors.</summary>
    public ReadOnlySpan<byte> ProtectedModeCode(ReadOnlySpan<byte> file) => file[SetupSize..];

    /// <summary>The compressed payload (vmlinux, compressed, followed by its 4-byte uncompressed size).</summary>
    public ReadOnlySpan<byte> Payload(ReadOnlySpan<byte> file)
    {
        if (!HasPayloadFields)
        {
            throw new KernelImageException(
                $"bzImage boot protocol {Version >> 8}.{Version & 0xFF:D2} has no payload_offset field (2.08+); " +
                "boot it with in-guest decompression");
        }
        return ProtectedModeCode(file).Slice((int)PayloadOffset, (int)PayloadLength);
    }

    /// <summary>The raw setup header bytes [0x1F1, <see cref="HeaderEnd"/>), for copying into boot_params.</summary>
    public ReadOnlySpan<byte> RawHeader(ReadOnlySpan<byte> file) => file[BootParamsLayout.SetupHeader..HeaderEnd];

    private static ushort U16(ReadOnlySpan<byte> f, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(f[offset..]);
    private static uint U32(ReadOnlySpan<byte> f, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(f[offset..]);
}
