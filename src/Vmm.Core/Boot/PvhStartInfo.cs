using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Boot;

/// <summary>
/// Writes the PVH boot information (include/xen/interface/hvm/start_info.h): <c>struct hvm_start_info</c> (version 1)
/// at <see cref="X86Layout.PvhStartInfoAddress"/>, followed in the same page by the module list (the initrd as one
/// <c>hvm_modlist_entry</c>) and the memory map (<c>hvm_memmap_table_entry</c>).
/// </summary>
public static class PvhStartInfo
{
    public const uint Magic = 0x336E_C578;
    public const uint Version = 1;

    // struct hvm_start_info (56 bytes).
    public const int MagicOffset = 0, VersionOffset = 4, FlagsOffset = 8, NrModulesOffset = 12, ModlistPaddrOffset = 16,
        CmdlinePaddrOffset = 24, RsdpPaddrOffset = 32, MemmapPaddrOffset = 40, MemmapEntriesOffset = 48, ReservedOffset = 52;
    public const int StartInfoSize = 56;
    /// <summary>struct hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.</summary>
    public const int ModlistEntrySize = 32;
    /// <summary>struct hvm_memmap_table_entry: addr, size, type (u32), reserved (u32).</summary>
    public const int MemmapEntrySize = 24;

    public const ulong ModlistAddress = X86Layout.PvhStartInfoAddress + 0x40;
    public const ulong MemmapAddress = X86Layout.PvhStartInfoAddress + 0x80;
    /// <summary>Memory-map entries that fit in the rest of the start-info page.</summary>
    public const int MaxMemmapEntries = (int)((0x1000 - (MemmapAddress - X86Layout.PvhStartInfoAddress)) / MemmapEntrySize);

    public static void Write(GuestMemory memory, ulong cmdlineAddress, ulong initrdAddress, ulong initrdSize,
        ReadOnlySpan<E820Entry> memoryMap)
    {
        if (memoryMap.Length > MaxMemmapEntries)
        {
            throw new BootException($"the memory map has {memoryMap.Length} entries; the PVH start info holds {MaxMemmapEntries}");
        }
        Span<byte> page = memory.GetSpan(new GuestAddress(X86Layout.PvhStartInfoAddress), 0x1000);
        page.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(page[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(page[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(page[CmdlinePaddrOffset..], cmdlineAddress);
        if (initrdSize != 0)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(page[NrModulesOffset..], 1);
            BinaryPrimitives.WriteUInt64LittleEndian(page[ModlistPaddrOffset..], ModlistAddress);
            Span<byte> module = page[(int)(ModlistAddress - X86Layout.PvhStartInfoAddress)..];
            BinaryPrimitives.WriteUInt64LittleEndian(module, initrdAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(module[8..], initrdSize);
        }
        BinaryPrimitives.WriteUInt64LittleEndian(page[MemmapPaddrOffset..], MemmapAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(page[MemmapEntriesOffset..], (uint)memoryMap.Length);
        Span<byte> table = page[(int)(MemmapAddress - X86Layout.PvhStartInfoAddress)..];
        for (int i = 0; i < memoryMap.Length; i++)
        {
            Span<byte> e = table[(i * MemmapEntrySize)..];
            BinaryPrimitives.WriteUInt64LittleEndian(e, memoryMap[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], memoryMap[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)memoryMap[i].Type);
        }
    }
}
