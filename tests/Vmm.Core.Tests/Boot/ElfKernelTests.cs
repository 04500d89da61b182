using System.Buffers.Binary;
using Vmm.Core.Boot;
using Vmm.Core.Memory;

namespace Vmm.Core.Tests.Boot;

public sealed class ElfKernelTests
{
    private const ulong Phys = 0x100_0000;
    private const ulong Virt = 0xFFFF_FFFF_8100_0000;

    private static GuestMemory Ram(ulong size = 64 << 20) => GuestMemory.CreateAnonymous((new GuestAddress(0), size));

    [Fact]
    public void Load_CopiesSegmentsToPhysicalAddressesAndZeroFillsBss()
    {
        byte[] text = TestElf.Pattern(0x3000, 1), data = TestElf.Pattern(0x1000, 2);
        byte[] file = TestElf.Build(
        [
            new TestSegment(Phys, Virt, text, 0x3000),
            new TestSegment(Phys + 0x10_0000, Virt + 0x10_0000, data, 0x5000),
        ], entry: Phys);
        using GuestMemory mem = Ram();
        // Garbage where the bss goes: the loader must clear it, not rely on fresh RAM.
        mem.GetSpan(new GuestAddress(Phys + 0x10_1000), 0x4000).Fill(0xCC);

        ElfKernel elf = ElfKernel.Parse(file);
        elf.Load(file, mem);

        Assert.Equal(text, mem.GetSpan(new GuestAddress(Phys), 0x3000).ToArray());
        Assert.Equal(data, mem.GetSpan(new GuestAddress(Phys + 0x10_0000), 0x1000).ToArray());
        Assert.True(mem.GetSpan(new GuestAddress(Phys + 0x10_1000), 0x4000).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(Phys, elf.PhysicalStart);
        Assert.Equal(Phys + 0x10_5000, elf.PhysicalEnd);
    }

    [Fact]
    public void Entry_VirtualIsTranslatedThroughTheSegment_PhysicalIsKept()
    {
        byte[] text = TestElf.Pattern(0x2000, 1);
        ElfKernel virtualEntry = ElfKernel.Parse(TestElf.Build([new TestSegment(Phys, Virt, text, 0x2000)], entry: Virt + 0x200));
        ElfKernel physicalEntry = ElfKernel.Parse(TestElf.Build([new TestSegment(Phys, Virt, text, 0x2000)], entry: Phys + 0x200));
        ElfKernel outside = ElfKernel.Parse(TestElf.Build([new TestSegment(Phys, Virt, text, 0x2000)], entry: 0x5000));

        Assert.Equal(Phys + 0x200, virtualEntry.PhysicalEntry());
        Assert.Equal(Phys + 0x200, physicalEntry.PhysicalEntry());
        Assert.Throws<KernelImageException>(() => outside.PhysicalEntry());
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(8, 4)]
    [InlineData(4, 8)]
    [InlineData(8, 8)]
    public void PvhNote_IsFound_WithEitherDescriptorSizeAndAlignment(int descSize, int align)
    {
        byte[] notes =
        [
            .. TestElf.Note("GNU", 3, new byte[20], align), // a build-id note first
            .. TestElf.Note("Xen", 5, "xen-3.0"u8.ToArray(), align), // another Xen note type
            .. TestElf.PvhNote(Phys + 0x123, descSize, align),
        ];
        byte[] file = TestElf.Build([new TestSegment(Phys, Virt, new byte[0x1000], 0x1000)], Phys, notes, (ulong)align);
        Assert.Equal((uint)(Phys + 0x123), ElfKernel.Parse(file).PvhEntry);
    }

    [Fact]
    public void PvhNote_NameWithoutNul_IsAccepted_OtherNamesAreNot()
    {
        var desc = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(desc, 0x100_0040);
        Assert.Equal(0x100_0040u, ElfKernel.FindPvhEntry(TestElf.Note("Xen", 18, desc, nulTerminate: false), 4));
        Assert.Null(ElfKernel.FindPvhEntry(TestElf.Note("Xenon", 18, desc), 4));
        Assert.Null(ElfKernel.FindPvhEntry(TestElf.Note("Xen", 17, desc), 4));
    }

    [Fact]
    public void MalformedNotes_DoNotThrowOrReadOutOfBounds()
    {
        byte[] good = TestElf.PvhNote(0x100_0000);
        // namesz huge: stop scanning.
        byte[] hugeName = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(hugeName, 0xFFFF_FFF0);
        Assert.Null(ElfKernel.FindPvhEntry(hugeName, 4));
        // descsz huge.
        byte[] hugeDesc = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(hugeDesc.AsSpan(4), 0xFFFF_FFFF);
        Assert.Null(ElfKernel.FindPvhEntry(hugeDesc, 4));
        // Truncated records.
        for (int n = 0; n < good.Length; n++)
        {
            Assert.Null(ElfKernel.FindPvhEntry(good.AsSpan(0, n), 4));
        }
        // A PVH note with a 2-byte descriptor is an error, not a silent miss.
        Assert.Throws<KernelImageException>(() => ElfKernel.FindPvhEntry(TestElf.Note("Xen", 18, new byte[2]), 4));
        // An 8-byte entry above 4 GiB cannot be a 32-bit entry.
        Assert.Throws<KernelImageException>(() => ElfKernel.FindPvhEntry(TestElf.PvhNote(0x1_0000_0000, 8), 4));
    }

    [Fact]
    public void WrongClassEndianMachineOrType_AreRejected()
    {
        TestSegment[] seg = [new TestSegment(Phys, Phys, new byte[16], 16)];
        Assert.Contains("32-bit", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(TestElf.Build(seg, Phys, elfClass: 1))).Message);
        Assert.Contains("little-endian", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(TestElf.Build(seg, Phys, dataEncoding: 2))).Message);
        Assert.Contains("x86_64", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(TestElf.Build(seg, Phys, machine: 0xB7))).Message);
        Assert.Contains("ET_EXEC", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(TestElf.Build(seg, Phys, type: 3))).Message);
    }

    [Fact]
    public void TruncatedHeaders_AreRejected()
    {
        byte[] file = TestElf.Kernel(pvh: true);
        for (int n = 4; n < 64 + 3 * 56; n += 7)
        {
            Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file.AsSpan(0, n)));
        }
    }

    [Fact]
    public void ProgramHeaderTableOutsideFile_IsRejected()
    {
        byte[] file = TestElf.Kernel(pvh: false);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(32), ulong.MaxValue - 8); // e_phoff: wraps when added
        Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file));
        file = TestElf.Kernel(pvh: false);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(56), 0xFFFF); // e_phnum
        Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file));
        file = TestElf.Kernel(pvh: false);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(54), 32); // e_phentsize too small
        Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file));
    }

    [Fact]
    public void FileSizeBeyondFile_IsRejected()
    {
        byte[] file = TestElf.Build([new TestSegment(Phys, Phys, new byte[0x100], 0x100)], Phys);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(64 + 32), 0x10_0000); // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(64 + 40), 0x10_0000); // p_memsz
        Assert.Contains("past the end", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file)).Message);

        file = TestElf.Build([new TestSegment(Phys, Phys, new byte[0x100], 0x100)], Phys);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(64 + 8), ulong.MaxValue - 0x10); // p_offset wraps
        Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file));
    }

    [Fact]
    public void FileSizeAboveMemorySize_IsRejected()
    {
        byte[] file = TestElf.Build([new TestSegment(Phys, Phys, new byte[0x100], 0x80)], Phys);
        Assert.Contains("p_filesz", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file)).Message);
    }

    [Fact]
    public void AddressWrapAround_IsRejected()
    {
        byte[] file = TestElf.Build([new TestSegment(ulong.MaxValue - 0x10, Phys, new byte[0x100], 0x100)], Phys);
        Assert.Contains("wraps", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file)).Message);
    }

    [Fact]
    public void SegmentBeyondRam_IsABootException_AndWritesNothing()
    {
        byte[] first = TestElf.Pattern(0x1000, 9);
        byte[] file = TestElf.Build(
        [
            new TestSegment(Phys, Phys, first, 0x1000),
            new TestSegment(63 << 20, 63 << 20, new byte[0x1000], 0x20_0000), // runs past 64 MiB
        ], Phys);
        using GuestMemory mem = Ram();
        ElfKernel elf = ElfKernel.Parse(file);
        Assert.Contains("guest RAM", Assert.Throws<BootException>(() => elf.Load(file, mem)).Message);
        Assert.True(mem.GetSpan(new GuestAddress(Phys), 0x1000).IndexOfAnyExcept((byte)0) < 0, "first segment was written");
    }

    [Fact]
    public void SegmentBelowOneMiB_IsRejected()
    {
        byte[] file = TestElf.Build([new TestSegment(0x7000, 0x7000, new byte[0x100], 0x100)], 0x7000);
        using GuestMemory mem = Ram();
        Assert.Contains("below 1 MiB", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file).Load(file, mem)).Message);
    }

    [Fact]
    public void NoLoadSegment_IsRejected()
    {
        byte[] file = TestElf.Build([], 0, notes: TestElf.PvhNote(Phys));
        Assert.Contains("PT_LOAD", Assert.Throws<KernelImageException>(() => ElfKernel.Parse(file)).Message);
    }

    [Fact]
    public void TrailingDataAfterElf_IsIgnored()
    {
        byte[] file = [.. TestElf.Kernel(pvh: true), .. TestElf.Pattern(5000, 3)]; // like vmlinux.bin + vmlinux.relocs
        ElfKernel elf = ElfKernel.Parse(file);
        Assert.NotNull(elf.PvhEntry);
        Assert.Equal(2, elf.Segments.Count);
    }
}
