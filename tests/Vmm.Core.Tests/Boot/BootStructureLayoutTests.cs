using Vmm.Core.Arch.X86;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

/// <summary>Pins the boot-structure offsets to the kernel's headers (numbers copied from
/// arch/x86/include/uapi/asm/bootparam.h and include/xen/interface/hvm/start_info.h, Linux 6.12).</summary>
public sealed class BootStructureLayoutTests
{
    [Theory]
    [InlineData(BootParamsLayout.ExtRamdiskImage, 0x0C0)]
    [InlineData(BootParamsLayout.ExtRamdiskSize, 0x0C4)]
    [InlineData(BootParamsLayout.ExtCmdLinePtr, 0x0C8)]
    [InlineData(BootParamsLayout.E820Entries, 0x1E8)]
    [InlineData(BootParamsLayout.Sentinel, 0x1EF)]
    [InlineData(BootParamsLayout.SetupHeader, 0x1F1)]
    [InlineData(BootParamsLayout.E820Table, 0x2D0)]
    [InlineData(BootParamsLayout.BootFlag, 0x1FE)]
    [InlineData(BootParamsLayout.Header, 0x202)]
    [InlineData(BootParamsLayout.Version, 0x206)]
    [InlineData(BootParamsLayout.TypeOfLoader, 0x210)]
    [InlineData(BootParamsLayout.LoadFlags, 0x211)]
    [InlineData(BootParamsLayout.Code32Start, 0x214)]
    [InlineData(BootParamsLayout.RamdiskImage, 0x218)]
    [InlineData(BootParamsLayout.RamdiskSize, 0x21C)]
    [InlineData(BootParamsLayout.CmdLinePtr, 0x228)]
    [InlineData(BootParamsLayout.InitrdAddrMax, 0x22C)]
    [InlineData(BootParamsLayout.KernelAlignment, 0x230)]
    [InlineData(BootParamsLayout.RelocatableKernel, 0x234)]
    [InlineData(BootParamsLayout.XLoadFlags, 0x236)]
    [InlineData(BootParamsLayout.CmdlineSize, 0x238)]
    [InlineData(BootParamsLayout.PayloadOffset, 0x248)]
    [InlineData(BootParamsLayout.PayloadLength, 0x24C)]
    [InlineData(BootParamsLayout.PrefAddress, 0x258)]
    [InlineData(BootParamsLayout.InitSize, 0x260)]
    [InlineData(BootParamsLayout.E820EntrySize, 20)]
    [InlineData(BootParamsLayout.E820MaxEntries, 128)]
    [InlineData(BootParamsLayout.Size, 4096)]
    public void BootParamsOffsets_MatchBootparamH(int actual, int expected) => Assert.Equal(expected, actual);

    [Fact]
    public void E820Table_EndsWhereBootparamHPutsThePadding()
    {
        // _pad8 follows e820_table at 0xCD0.
        Assert.Equal(0xCD0, BootParamsLayout.E820Table + BootParamsLayout.E820MaxEntries * BootParamsLayout.E820EntrySize);
    }

    [Theory]
    [InlineData(PvhStartInfo.MagicOffset, 0)]
    [InlineData(PvhStartInfo.VersionOffset, 4)]
    [InlineData(PvhStartInfo.FlagsOffset, 8)]
    [InlineData(PvhStartInfo.NrModulesOffset, 12)]
    [InlineData(PvhStartInfo.ModlistPaddrOffset, 16)]
    [InlineData(PvhStartInfo.CmdlinePaddrOffset, 24)]
    [InlineData(PvhStartInfo.RsdpPaddrOffset, 32)]
    [InlineData(PvhStartInfo.MemmapPaddrOffset, 40)]
    [InlineData(PvhStartInfo.MemmapEntriesOffset, 48)]
    [InlineData(PvhStartInfo.ReservedOffset, 52)]
    [InlineData(PvhStartInfo.StartInfoSize, 56)]
    [InlineData(PvhStartInfo.ModlistEntrySize, 32)]
    [InlineData(PvhStartInfo.MemmapEntrySize, 24)]
    public void PvhOffsets_MatchStartInfoH(int actual, int expected) => Assert.Equal(expected, actual);

    [Fact]
    public void PvhStructures_DoNotOverlapEachOtherOrTheZeroPage()
    {
        Assert.True(X86Layout.PvhStartInfoAddress + PvhStartInfo.StartInfoSize <= PvhStartInfo.ModlistAddress);
        Assert.True(PvhStartInfo.ModlistAddress + PvhStartInfo.ModlistEntrySize <= PvhStartInfo.MemmapAddress);
        Assert.True(PvhStartInfo.MemmapAddress + (ulong)(PvhStartInfo.MaxMemmapEntries * PvhStartInfo.MemmapEntrySize)
                    <= X86Layout.ZeroPageAddress);
        Assert.Equal(0x336E_C578u, PvhStartInfo.Magic);
    }
}
