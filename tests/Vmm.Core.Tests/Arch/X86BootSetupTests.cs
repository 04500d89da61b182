using Vmm.Core.Arch.X86;
using Vmm.Core.Memory;

namespace Vmm.Core.Tests.Arch;

public sealed class X86BootSetupTests
{
    [Fact]
    public void Descriptors_EncodeToTheClassicFlatValues()
    {
        // Well-known encodings: 64-bit code 0x00AF9B000000FFFF, 32-bit code 0x00CF9B000000FFFF, data 0x00CF93000000FFFF.
        Assert.Equal(0x00AF_9B00_0000_FFFFul, X86BootSetup.EncodeDescriptor(X86BootSetup.FlatCode(longMode: true)));
        Assert.Equal(0x00CF_9B00_0000_FFFFul, X86BootSetup.EncodeDescriptor(X86BootSetup.FlatCode(longMode: false)));
        Assert.Equal(0x00CF_9300_0000_FFFFul, X86BootSetup.EncodeDescriptor(X86BootSetup.FlatData()));
        // Busy 32/64-bit TSS (type 0xB), system descriptor, limit 0x67, byte granular.
        Assert.Equal(0x0000_8B00_0000_0067ul, X86BootSetup.EncodeDescriptor(X86BootSetup.BusyTss()));
    }

    [Fact]
    public void Gdt_HoldsTheDescriptorsAtTheSelectors_AndFitsBeforeTheIdt()
    {
        using GuestMemory mem = GuestMemory.CreateAnonymous((new GuestAddress(0), 1UL << 20));
        X86BootCpuState s = X86BootSetup.LongMode(mem, 0x100_0000, X86Layout.ZeroPageAddress, "test");
        Assert.True(X86Layout.GdtAddress + s.GdtLimit + 1u <= X86Layout.IdtAddress);
        Assert.Equal(0ul, mem.Read<ulong>(new GuestAddress(X86Layout.GdtAddress)));
        Assert.Equal(X86BootSetup.EncodeDescriptor(s.Code), mem.Read<ulong>(new GuestAddress(X86Layout.GdtAddress + s.Code.Selector)));
        Assert.Equal(X86BootSetup.EncodeDescriptor(s.Data), mem.Read<ulong>(new GuestAddress(X86Layout.GdtAddress + s.Data.Selector)));
        Assert.Equal(X86BootSetup.EncodeDescriptor(s.Task), mem.Read<ulong>(new GuestAddress(X86Layout.GdtAddress + s.Task.Selector)));
        Assert.Equal((ushort)0x10, s.Code.Selector);
        Assert.Equal((ushort)0x18, s.Data.Selector);
    }

    [Fact]
    public void IdentityMap_CoversTheFirstGiBWith2MiBPages()
    {
        using GuestMemory mem = GuestMemory.CreateAnonymous((new GuestAddress(0), 1UL << 20));
        X86BootSetup.WriteIdentityPageTables(mem);
        ulong pml4 = mem.Read<ulong>(new GuestAddress(X86Layout.Pml4Address));
        ulong pdpt = mem.Read<ulong>(new GuestAddress(X86Layout.PdptAddress));
        Assert.Equal(X86Layout.PdptAddress | 3, pml4);
        Assert.Equal(X86Layout.PdAddress | 3, pdpt);
        Assert.Equal(0ul, mem.Read<ulong>(new GuestAddress(X86Layout.Pml4Address + 8)));
        Assert.Equal(0ul, mem.Read<ulong>(new GuestAddress(X86Layout.PdptAddress + 8))); // nothing above 1 GiB
        for (ulong i = 0; i < 512; i++)
        {
            Assert.Equal((i << 21) | 0x83, mem.Read<ulong>(new GuestAddress(X86Layout.PdAddress + i * 8)));
        }
    }
}
