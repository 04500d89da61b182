using Vmm.Core.Arch.X86;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

/// <summary>Pins the boot-structure offsets to the kernel's headers (numbers copied from
/// arch/x86/include/uapi/asm/bootparam.h and include/xen/interface/hvm/start_info.h, Linux 6.12).</summary>
public sealed class BootStructureLayoutTests
{
    [Theory]
    [InlineData("ExtRamdiskImage", BootParamsLayout.ExtRamdiskImage, 0x0C0)]
    [InlineData("ExtRamdiskSize", BootParamsLayout.ExtRamdiskSize, 0x0C4)]
    [InlineData("ExtCmdLinePtr", BootParamsLayout.ExtCmdLinePtr, 0x0C8)]
    [InlineData("E820Entries", BootParamsLayout.E820Entries, 0x1E8)]
    [InlineData("Sentinel", BootParamsLayout.Sentinel, 0x1EF)]
    [InlineData("SetupHeader", BootParamsLayout.SetupHeader, 0x1F1)]
    [InlineData("E820Table", BootParamsLayout.E820Table, 0x2D0)]
    [InlineData("BootFlag", BootParamsLayout.BootFlag, 0x1FE)]
    [InlineData("Header", BootParamsLayout.Header, 0x202)]
    [InlineData("Version", BootParamsLayout.Version, 0x206)]
    [InlineData("TypeOfLoader", BootParamsLayout.TypeOfLoader, 0x210)]
    [InlineData("LoadFlags", BootParamsLayout.LoadFlags, 0x211)]
    [InlineData("Code32Start", BootParamsLayout.Code32Start, 0x214)]
    [InlineData("RamdiskImage", BootParamsLayout.RamdiskImage, 0x218)]
    [InlineData("RamdiskSize", BootParamsLayout.RamdiskSize, 0x21C)]
    [InlineData("CmdLinePtr", BootParamsLayout.CmdLinePtr, 0x228)]
    [InlineData("InitrdAddrMax", BootParamsLayout.InitrdAddrMax, 0x22C)]
    [InlineData("KernelAlignment", BootParamsLayout.KernelAlignment, 0x230)]
    [InlineData("RelocatableKernel", BootParamsLayout.RelocatableKernel, 0x234)]
    [InlineData("XLoadFlags", BootParamsLayout.XLoadFlags, 0x236)]
    [InlineData("CmdlineSize", BootParamsLayout.CmdlineSize, 0x238)]
    [InlineData("PayloadOffset", BootParamsLayout.PayloadOffset, 0x248)]
    [InlineData("PayloadLength", BootParamsLayout.PayloadLength, 0x24C)]
    [InlineData("PrefAddress", BootParamsLayout.PrefAddress, 0x258)]
    [InlineData("InitSize", BootParamsLayout.InitSize, 0x260)]
    [InlineData("E820EntrySize", BootParamsLayout.E820EntrySize, 20)]
    [InlineData("E820MaxEntries", BootParamsLayout.E820MaxEntries, 128)]
    [InlineData("Size", BootParamsLayout.Size, 4096)]
    public void BootParamsOffsets_MatchBootparamH(string field, int actual, int expected) =>
        Assert.True(expected == actual, $"{field}: 0x{actual:x}, bootparam.h says 0x{expected:x}");

    [Fact]
    public void E820Table_EndsWhereBootparamHPutsThePadding()
    {
        // _pad8 follows e820_table at 0xCD0.
        Assert.Equal(0xCD0, BootParamsLayout.E820Table + BootParamsLayout.E820MaxEntries * BootParamsLayout.E820EntrySize);
    }

    [Theory]
    [InlineData("MagicOffset", PvhStartInfo.MagicOffset, 0)]
    [InlineData("VersionOffset", PvhStartInfo.VersionOffset, 4)]
    [InlineData("FlagsOffset", PvhStartInfo.FlagsOffset, 8)]
    [InlineData("NrModulesOffset", PvhStartInfo.NrModulesOffset, 12)]
    [InlineData("ModlistPaddrOffset", PvhStartInfo.ModlistPaddrOffset, 16)]
    [InlineData("CmdlinePaddrOffset", PvhStartInfo.CmdlinePaddrOffset, 24)]
    [InlineData("RsdpPaddrOffset", PvhStartInfo.RsdpPaddrOffset, 32)]
    [InlineData("MemmapPaddrOffset", PvhStartInfo.MemmapPaddrOffset, 40)]
    [InlineData("MemmapEntriesOffset", PvhStartInfo.MemmapEntriesOffset, 48)]
    [InlineData("ReservedOffset", PvhStartInfo.ReservedOffset, 52)]
    [InlineData("StartInfoSize", PvhStartInfo.StartInfoSize, 56)]
    [InlineData("ModlistEntrySize", PvhStartInfo.ModlistEntrySize, 32)]
    [InlineData("MemmapEntrySize", PvhStartInfo.MemmapEntrySize, 24)]
    public void PvhOffsets_MatchStartInfoH(string field, int actual, int expected) =>
        Assert.True(expected == actual, $"{field}: {actual}, start_info.h says {expected}");

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
