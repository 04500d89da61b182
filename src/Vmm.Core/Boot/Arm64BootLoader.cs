using System.Buffers.Binary;
using System.Diagnostics;
using Vmm.Core.Arch.Arm64;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>
/// Loads an arm64 Linux kernel the way Documentation/arch/arm64/booting.rst asks: the <c>Image</c> (plain, gzip
/// <c>vmlinuz</c> as Debian ships it, or the gzip payload of an EFI zboot image) at a 2 MiB-aligned base plus its
/// text_offset, the device tree (<see cref="Arm64DeviceTree"/>: memory, CPUs, cmdline, initrd) in the last 2 MiB of
/// RAM, and the initrd just below it. Every size comes from an untrusted file and is checked against guest RAM.
/// </summary>
public static class Arm64BootLoader
{
    /// <summary>booting.rst: the DTB sits on an 8-byte boundary and is at most 2 MiB.</summary>
    public const ulong DeviceTreeMaxSize = 2UL << 20;

    private const uint ZbootPayloadOffsetField = 8, ZbootPayloadSizeField = 12, ZbootCompressionField = 24;

    /// <summary>The arm64 Image inside <paramref name="kernelFile"/>, decompressed when needed.</summary>
    public static byte[] ExtractImage(ReadOnlySpan<byte> kernelFile, out PayloadCompression? compression,
        ulong maxSize = PayloadDecompressor.DefaultMaxUncompressedSize)
    {
        compression = null;
        if (Arm64ImageHeader.HasMagic(kernelFile))
        {
            return kernelFile.ToArray();
        }
        ReadOnlySpan<byte> payload = kernelFile;
        if (kernelFile.Length >= 32 && kernelFile[..2].SequenceEqual("MZ"u8) && kernelFile[4..8].SequenceEqual("zimg"u8))
        {
            uint offset = BinaryPrimitives.ReadUInt32LittleEndian(kernelFile[(int)ZbootPayloadOffsetField..]);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(kernelFile[(int)ZbootPayloadSizeField..]);
            string type = System.Text.Encoding.ASCII.GetString(kernelFile.Slice((int)ZbootCompressionField, 8)).TrimEnd('\0');
            if ((ulong)offset + size > (ulong)kernelFile.Length || size < 8)
            {
                throw new KernelImageException($"the EFI zboot image's payload (0x{offset:x}+0x{size:x}) lies outside the file");
            }
            if (type != "gzip")
            {
                throw new KernelImageException($"the EFI zboot image's payload is {type}-compressed; only gzip is supported (or pass the plain Image)");
            }
            payload = kernelFile.Slice((int)offset, (int)size);
        }
        if (PayloadDecompressor.Detect(payload) != PayloadCompression.Gzip)
        {
            throw new KernelImageException("not an arm64 kernel: no Image header, gzip stream or EFI zboot header");
        }
        byte[] image = PayloadDecompressor.Decompress(payload, out PayloadCompression c, maxSize);
        compression = c;
        if (!Arm64ImageHeader.HasMagic(image))
        {
            throw new KernelImageException("the gzip stream does not hold an arm64 Image (no \"ARM\\x64\" magic)");
        }
        return image;
    }

    /// <summary>
    /// Loads the kernel, initrd (may be empty) and device tree into <paramref name="memory"/>, which must be one RAM
    /// region at <see cref="Arm64Layout.RamStart"/>, and returns the boot vCPU's state.
    /// </summary>
    public static LinuxBootResult Load(GuestMemory memory, ReadOnlySpan<byte> kernelFile, ReadOnlySpan<byte> initrd,
        KernelCmdline cmdline, int cpus, ulong maxUncompressedSize = PayloadDecompressor.DefaultMaxUncompressedSize)
    {
        var total = Stopwatch.StartNew();
        if (memory.Regions.Count != 1 || memory.Regions[0].Start.Value != Arm64Layout.RamStart)
        {
            throw new BootException($"arm64 guest RAM must be one region at 0x{Arm64Layout.RamStart:x}");
        }
        ulong ramStart = Arm64Layout.RamStart, ramSize = memory.Regions[0].Size, ramEnd = ramStart + ramSize;

        var sw = Stopwatch.StartNew();
        byte[] image = ExtractImage(kernelFile, out PayloadCompression? compression, maxUncompressedSize);
        TimeSpan decompressTime = compression is null ? TimeSpan.Zero : sw.Elapsed;
        Arm64ImageHeader header = Arm64ImageHeader.Parse(image);
        ulong load = header.LoadAddress(ramStart, ramSize);
        ulong kernelEnd = load + header.ImageSize;

        if (ramSize < 2 * DeviceTreeMaxSize)
        {
            throw new BootException($"{ramSize >> 20} MiB of guest RAM is too little for an arm64 guest");
        }
        ulong dtbAddress = ramEnd - DeviceTreeMaxSize; // 2 MiB-aligned: RAM sizes are whole MiB, the start 1 GiB
        ulong initrdAddress = 0;
        if (!initrd.IsEmpty)
        {
            initrdAddress = (dtbAddress - (ulong)initrd.Length) & ~0xFFFUL;
            if ((ulong)initrd.Length > dtbAddress - ramStart || initrdAddress < kernelEnd)
            {
                throw new BootException($"the initrd ({initrd.Length} bytes) does not fit in guest RAM between the kernel (ends 0x{kernelEnd:x}) and the device tree");
            }
        }
        else if (kernelEnd > dtbAddress)
        {
            throw new BootException($"the kernel (ends 0x{kernelEnd:x}) overlaps the device tree at 0x{dtbAddress:x}; give the guest more RAM");
        }

        string line = cmdline.ToString();
        byte[] dtb = Arm64DeviceTree.Create(new Arm64MachineSpec(ramSize, cpus, line,
            initrd.IsEmpty ? null : (initrdAddress, initrdAddress + (ulong)initrd.Length)));
        if ((ulong)dtb.Length > DeviceTreeMaxSize)
        {
            throw new BootException($"the device tree is {dtb.Length} bytes, more than the 2 MiB arm64 Linux accepts (command line too long?)");
        }

        memory.WriteBytes(new GuestAddress(load), image);
        if (!initrd.IsEmpty)
        {
            memory.WriteBytes(new GuestAddress(initrdAddress), initrd);
        }
        memory.WriteBytes(new GuestAddress(dtbAddress), dtb);

        return new LinuxBootResult
        {
            Cpu = new Arm64BootCpuState { Pc = load, DeviceTree = dtbAddress, EntryKind = "arm64 Image" },
            ImageKind = KernelImageKind.Arm64Image,
            Method = BootMethod.Arm64,
            Compression = compression,
            KernelStart = load,
            KernelEnd = kernelEnd,
            EntryPoint = load,
            InitrdAddress = initrdAddress,
            InitrdSize = (ulong)initrd.Length,
            Cmdline = line,
            KernelFileSize = kernelFile.Length,
            ElfSize = image.Length,
            DecompressTime = decompressTime,
            TotalTime = total.Elapsed,
        };
    }
}
