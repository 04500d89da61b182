using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>One PT_LOAD segment of an ELF kernel, validated against the file.</summary>
public readonly record struct ElfLoadSegment(ulong FileOffset, ulong FileSize, ulong MemorySize, ulong PhysicalAddress,
    ulong VirtualAddress);

/// <summary>
/// An x86_64 ELF kernel (vmlinux), parsed and validated: ELF64, little-endian, EM_X86_64, ET_EXEC; program headers and
/// PT_LOAD file ranges inside the file; the Xen PVH entry note if present. The file is untrusted: every offset, size
/// and count is checked with overflow-safe arithmetic and a bad one is a <see cref="KernelImageException"/>.
/// Trailing data after the ELF (vmlinux.relocs in a bzImage payload) is ignored.
/// </summary>
public sealed class ElfKernel
{
    private const int ElfHeaderSize = 64;
    private const int ProgramHeaderSize = 56;
    internal const ushort MachineX86_64 = 0x3E, MachineAarch64 = 0xB7;
    private const ushort TypeExec = 2;
    private const uint PtLoad = 1;
    private const uint PtNote = 4;
    /// <summary>XEN_ELFNOTE_PHYS32_ENTRY (include/xen/interface/elfnote.h): 32-bit physical PVH entry point.</summary>
    public const uint XenElfNotePhys32Entry = 18;
    /// <summary>Program headers we are willing to walk; vmlinux has about 5.</summary>
    private const int MaxProgramHeaders = 256;

    private ElfKernel(IReadOnlyList<ElfLoadSegment> segments, ulong entry, uint? pvhEntry)
    {
        Segments = segments;
        ElfEntry = entry;
        PvhEntry = pvhEntry;
    }

    public IReadOnlyList<ElfLoadSegment> Segments { get; }
    /// <summary>e_entry as written in the file (physical for x86_64 vmlinux, but may be virtual).</summary>
    public ulong ElfEntry { get; }
    /// <summary>The PVH 32-bit entry point from the Xen note, or null when the kernel has none.</summary>
    public uint? PvhEntry { get; }

    /// <summary>Lowest physical address of any loaded byte.</summary>
    public ulong PhysicalStart { get; private init; }
    /// <summary>One past the highest physical address of any loaded byte (bss included).</summary>
    public ulong PhysicalEnd { get; private init; }

    public static bool HasElfMagic(ReadOnlySpan<byte> file) =>
        file.Length >= 4 && file[0] == 0x7F && file[1] == (byte)'E' && file[2] == (byte)'L' && file[3] == (byte)'F';

    /// <summary>Parses and validates the ELF headers and notes; does not touch guest memory.</summary>
    public static ElfKernel Parse(ReadOnlySpan<byte> file)
    {
        if (!HasElfMagic(file))
        {
            throw new KernelImageException("not an ELF file: no \\x7fELF magic");
        }
        if (file.Length < ElfHeaderSize)
        {
            throw new KernelImageException($"ELF file is truncated: {file.Length} bytes, shorter than the 64-byte ELF64 header");
        }
        if (file[4] != 2)
        {
            throw new KernelImageException(file[4] == 1
                ? "32-bit ELF kernels are not supported; an x86_64 (ELF64) vmlinux is required"
                : $"ELF file has an invalid class {file[4]}");
        }
        if (file[5] != 1)
        {
            throw new KernelImageException("ELF file is not little-endian; an x86_64 vmlinux is required");
        }
        ushort type = U16(file, 16);
        ushort machine = U16(file, 18);
        if (machine != MachineX86_64)
        {
            throw new KernelImageException(machine == MachineAarch64
                ? LinuxBootLoader.ArmKernelOnX86
                : $"ELF file is for machine 0x{machine:x}, not x86_64 (0x3e)");
        }
        if (type != TypeExec)
        {
            throw new KernelImageException($"ELF file has type {type}, not an executable (ET_EXEC)");
        }
        ulong entry = U64(file, 24);
        ulong phoff = U64(file, 32);
        ushort phentsize = U16(file, 54);
        ushort phnum = U16(file, 56);
        if (phnum == 0 || phnum > MaxProgramHeaders)
        {
            throw new KernelImageException($"ELF file has {phnum} program headers (expected 1..{MaxProgramHeaders})");
        }
        if (phentsize < ProgramHeaderSize)
        {
            throw new KernelImageException($"ELF program header size {phentsize} is smaller than the ELF64 size 56");
        }
        ulong tableSize = (ulong)phnum * phentsize;
        if (phoff > (ulong)file.Length || tableSize > (ulong)file.Length - phoff)
        {
            throw new KernelImageException($"ELF program header table (offset 0x{phoff:x}, {phnum} entries) lies outside the file");
        }

        var segments = new List<ElfLoadSegment>();
        uint? pvhEntry = null;
        ulong start = ulong.MaxValue, end = 0;
        for (int i = 0; i < phnum; i++)
        {
            ReadOnlySpan<byte> ph = file.Slice((int)(phoff + (ulong)i * phentsize), ProgramHeaderSize);
            uint ptype = BinaryPrimitives.ReadUInt32LittleEndian(ph);
            ulong offset = U64(ph, 8);
            ulong vaddr = U64(ph, 16);
            ulong paddr = U64(ph, 24);
            ulong filesz = U64(ph, 32);
            ulong memsz = U64(ph, 40);
            ulong align = U64(ph, 48);
            if (ptype is not (PtLoad or PtNote))
            {
                continue;
            }
            if (offset > (ulong)file.Length || filesz > (ulong)file.Length - offset)
            {
                throw new KernelImageException(
                    $"ELF segment {i} (file offset 0x{offset:x}, 0x{filesz:x} bytes) extends past the end of the {file.Length}-byte file");
            }
            if (ptype == PtNote)
            {
                pvhEntry ??= FindPvhEntry(file.Slice((int)offset, (int)filesz), align == 8 ? 8 : 4);
                continue;
            }
            if (filesz > memsz)
            {
                throw new KernelImageException($"ELF segment {i} has p_filesz 0x{filesz:x} larger than p_memsz 0x{memsz:x}");
            }
            if (memsz == 0)
            {
                continue;
            }
            if (memsz > int.MaxValue)
            {
                throw new KernelImageException($"ELF segment {i} is 0x{memsz:x} bytes, larger than any kernel");
            }
            if (paddr + memsz < paddr || vaddr + memsz < vaddr)
            {
                throw new KernelImageException($"ELF segment {i} (address 0x{paddr:x}, 0x{memsz:x} bytes) wraps around the address space");
            }
            segments.Add(new ElfLoadSegment(offset, filesz, memsz, paddr, vaddr));
            start = Math.Min(start, paddr);
            end = Math.Max(end, paddr + memsz);
        }
        if (segments.Count == 0)
        {
            throw new KernelImageException("ELF file has no loadable (PT_LOAD) segment");
        }
        return new ElfKernel(segments, entry, pvhEntry) { PhysicalStart = start, PhysicalEnd = end };
    }

    /// <summary>
    /// Looks for the Xen note XEN_ELFNOTE_PHYS32_ENTRY in one PT_NOTE segment: records of
    /// [namesz, descsz, type][name, padded][desc, padded], padded to <paramref name="alignment"/> (4 for Linux's
    /// notes; 8 when the segment says so). The descriptor is a 4- or 8-byte little-endian physical address.
    /// A malformed record ends the scan of this segment (a note we cannot read is a note we do not have);
    /// a PVH note with an unusable value is an error.
    /// </summary>
    internal static uint? FindPvhEntry(ReadOnlySpan<byte> notes, int alignment)
    {
        int pos = 0;
        while (notes.Length - pos >= 12)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(notes[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 8)..]);
            pos += 12;
            ulong nameSpan = AlignUp(namesz, (uint)alignment);
            ulong descSpan = AlignUp(descsz, (uint)alignment);
            if (nameSpan > (ulong)(notes.Length - pos) || descsz > (ulong)(notes.Length - pos) - nameSpan)
            {
                return null;
            }
            ReadOnlySpan<byte> name = notes.Slice(pos, (int)namesz);
            ReadOnlySpan<byte> desc = notes.Slice(pos + (int)nameSpan, (int)descsz);
            if (type == XenElfNotePhys32Entry && (name.SequenceEqual("Xen\0"u8) || name.SequenceEqual("Xen"u8)))
            {
                ulong value = descsz switch
                {
                    4 => BinaryPrimitives.ReadUInt32LittleEndian(desc),
                    8 => BinaryPrimitives.ReadUInt64LittleEndian(desc),
                    _ => throw new KernelImageException(
                        $"ELF PVH note (XEN_ELFNOTE_PHYS32_ENTRY) has a {descsz}-byte descriptor; 4 or 8 expected"),
                };
                if (value > uint.MaxValue)
                {
                    throw new KernelImageException($"ELF PVH entry point 0x{value:x} is above 4 GiB");
                }
                return (uint)value;
            }
            ulong advance = nameSpan + descSpan;
            if (advance > (ulong)(notes.Length - pos))
            {
                return null;
            }
            pos += (int)advance;
        }
        return null;
    }

    /// <summary>
    /// Translates e_entry to a physical address: as is when it lies in a segment's physical range; through
    /// p_vaddr→p_paddr when it lies in a segment's virtual range (0xffffffff81000000-style kernels).
    /// </summary>
    public ulong PhysicalEntry()
    {
        foreach (ElfLoadSegment s in Segments)
        {
            if (ElfEntry >= s.PhysicalAddress && ElfEntry - s.PhysicalAddress < s.MemorySize)
            {
                return ElfEntry;
            }
        }
        foreach (ElfLoadSegment s in Segments)
        {
            if (ElfEntry >= s.VirtualAddress && ElfEntry - s.VirtualAddress < s.MemorySize)
            {
                return s.PhysicalAddress + (ElfEntry - s.VirtualAddress);
            }
        }
        throw new KernelImageException($"ELF entry point 0x{ElfEntry:x} is not inside any loadable segment");
    }

    /// <summary>Whether a physical address lies inside a loaded segment (the PVH entry must).</summary>
    public bool ContainsPhysical(ulong address)
    {
        foreach (ElfLoadSegment s in Segments)
        {
            if (address >= s.PhysicalAddress && address - s.PhysicalAddress < s.MemorySize)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Copies every PT_LOAD segment to its physical address and zero-fills p_memsz beyond p_filesz. Each segment
    /// must lie in one guest RAM region at or above 1 MiB (below that are the VMM's boot structures).
    /// Nothing is written unless every segment passes.
    /// </summary>
    public void Load(ReadOnlySpan<byte> file, GuestMemory memory)
    {
        foreach (ElfLoadSegment s in Segments)
        {
            if (s.FileOffset > (ulong)file.Length || s.FileSize > (ulong)file.Length - s.FileOffset)
            {
                throw new ArgumentException("the file passed to Load is not the one that was parsed", nameof(file));
            }
            if (s.PhysicalAddress < X86Layout.HighMemoryStart)
            {
                throw new KernelImageException(
                    $"ELF segment at 0x{s.PhysicalAddress:x} lies below 1 MiB, where the VMM keeps its boot structures");
            }
            if (!memory.IsValidRange(new GuestAddress(s.PhysicalAddress), s.MemorySize))
            {
                throw new BootException(
                    $"kernel segment 0x{s.PhysicalAddress:x}-0x{s.PhysicalAddress + s.MemorySize:x} does not fit in guest RAM; " +
                    "give the VM more memory");
            }
        }
        foreach (ElfLoadSegment s in Segments)
        {
            Span<byte> target = memory.GetSpan(new GuestAddress(s.PhysicalAddress), s.MemorySize);
            file.Slice((int)s.FileOffset, (int)s.FileSize).CopyTo(target);
            target[(int)s.FileSize..].Clear();
        }
    }

    private static ulong AlignUp(uint value, uint alignment) => ((ulong)value + alignment - 1) & ~((ulong)alignment - 1);
    private static ushort U16(ReadOnlySpan<byte> f, int o) => BinaryPrimitives.ReadUInt16LittleEndian(f[o..]);
    private static ulong U64(ReadOnlySpan<byte> f, int o) => BinaryPrimitives.ReadUInt64LittleEndian(f[o..]);
}
