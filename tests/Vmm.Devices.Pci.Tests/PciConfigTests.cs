using Vmm.Core.Arch.X86;
using static Vmm.Devices.Pci.PciConfigRegisters;

namespace Vmm.Devices.Pci.Tests;

public sealed class PciConfigTests
{
    [Fact]
    public void HostBridge_IsAtSlot0_WithHostBridgeClass()
    {
        using var b = new PciBench();
        Assert.Equal(0x0008_1B36u, b.ConfigRead(0, VendorId));
        // Class code 0x0600 in the upper 16 bits of dword 0x08: what Linux's pci_sanity_check looks for.
        Assert.Equal(0x0600u, b.ConfigRead(0, 0x0A, 2));
        Assert.Equal(0u, b.ConfigRead(0, HeaderType, 1) & 0x7F);
    }

    [Fact]
    public void MissingDevicesFunctionsAndBuses_ReadAllOnes_AndIgnoreWrites()
    {
        using var b = new PciBench();
        Assert.Equal(AllOnes, b.ConfigRead(5, VendorId));
        Assert.Equal(0xFFFFu, b.ConfigRead(31, VendorId, 2));
        // Function 1 of slot 0 and bus 1, through ECAM.
        Assert.Equal(0xFFFF_FFFFUL, b.MmioRead(PciBench.EcamAddress(0, 0) + (1 << 12), 4));
        Assert.Equal(0xFFFF_FFFFUL, b.MmioRead(X86Layout.PciEcamStart + (1UL << 20), 4));
        b.ConfigWrite(5, Command, 0xFFFF);
        Assert.Equal(AllOnes, b.ConfigRead(5, Command));
    }

    [Fact]
    public void Conf1_AddressLatchesOnlyOnDwordWrites_AndDisabledAddressReadsAllOnes()
    {
        using var b = new PciBench();
        // Linux's pci_check_type1: outb(0x01, 0xCFB), then outl(0x80000000, 0xCF8) must read back unchanged.
        Assert.True(b.Pio.Write(0xCFB, [0x01]));
        Assert.True(b.Pio.Write(0xCF8, [0x00, 0x00, 0x00, 0x80]));
        Span<byte> back = stackalloc byte[4];
        Assert.True(b.Pio.Read(0xCF8, back));
        Assert.Equal(0x8000_0000u, BitConverter.ToUInt32(back));
        // Enable bit clear → data port reads all ones.
        Assert.True(b.Pio.Write(0xCF8, [0x00, 0x00, 0x00, 0x00]));
        Assert.True(b.Pio.Read(0xCFC, back));
        Assert.Equal(AllOnes, BitConverter.ToUInt32(back));
    }

    [Fact]
    public void Conf1_SubDwordAccessesAtEveryByteOffset()
    {
        using var b = new PciBench();
        Assert.Equal(0x1B36u, b.ConfigRead(0, 0, 2));
        Assert.Equal(0x0008u, b.ConfigRead(0, 2, 2));
        Assert.Equal(0x1Bu, b.ConfigRead(0, 1, 1));
        Assert.Equal(0x00u, b.ConfigRead(0, 3, 1));
    }

    [Fact]
    public void Ecam_MatchesConf1_AndExtendedSpaceReadsZero()
    {
        using var b = new PciBench();
        (_, _, int slot) = b.AddVirtio();
        for (int offset = 0; offset < 256; offset += 4)
        {
            Assert.Equal(b.ConfigRead(slot, offset), (uint)b.MmioRead(PciBench.EcamAddress(slot, offset), 4));
        }
        Assert.Equal(0UL, b.MmioRead(PciBench.EcamAddress(slot, 0x100), 4));
        Assert.Equal(0UL, b.MmioRead(PciBench.EcamAddress(slot, 0xFFC), 4));
        // An access straddling the function's 4 KiB window.
        Assert.Equal(0xFFFF_FFFF_FFFF_FFFFUL, b.MmioRead(PciBench.EcamAddress(slot, 0xFFC), 8));
        b.MmioWrite(PciBench.EcamAddress(slot, InterruptLine), 0x42, 1);
        Assert.Equal(0x42u, b.ConfigRead(slot, InterruptLine, 1));
    }

    [Fact]
    public void ReadOnlyRegisters_IgnoreWrites_WritableBitsFollowMasks()
    {
        using var b = new PciBench();
        (_, _, int slot) = b.AddVirtio();
        uint ids = b.ConfigRead(slot, VendorId);
        b.ConfigWrite(slot, VendorId, 0x1234_5678);
        Assert.Equal(ids, b.ConfigRead(slot, VendorId));
        uint classRev = b.ConfigRead(slot, RevisionId);
        b.ConfigWrite(slot, RevisionId, 0);
        Assert.Equal(classRev, b.ConfigRead(slot, RevisionId));

        // Command: only IO/MEM/master/parity/SERR/INTx-disable are writable.
        b.ConfigWrite(slot, Command, 0xFFFF, 2);
        Assert.Equal(0x0547u, b.ConfigRead(slot, Command, 2));
        // Status: capability-list bit set and read-only.
        b.ConfigWrite(slot, Status, 0xFFFF, 2);
        Assert.Equal((uint)StatusCapabilitiesList, b.ConfigRead(slot, Status, 2) & 0xFFFF);

        // Interrupt line writable, pin read-only (INTA#).
        b.ConfigWrite(slot, InterruptLine, 0xFFFF, 2);
        Assert.Equal(0x01FFu, b.ConfigRead(slot, InterruptLine, 2));
        // Capability pointer and the capability bodies are read-only.
        uint capPtr = b.ConfigRead(slot, CapabilitiesPointer, 1);
        b.ConfigWrite(slot, CapabilitiesPointer, 0, 1);
        Assert.Equal(capPtr, b.ConfigRead(slot, CapabilitiesPointer, 1));
        uint firstCap = b.ConfigRead(slot, (int)capPtr);
        b.ConfigWrite(slot, (int)capPtr, 0);
        Assert.Equal(firstCap, b.ConfigRead(slot, (int)capPtr));
        // Unimplemented BARs and the expansion ROM are hard-wired to zero.
        b.ConfigWrite(slot, Bar0 + 4, AllOnes);
        Assert.Equal(0u, b.ConfigRead(slot, Bar0 + 4));
        b.ConfigWrite(slot, ExpansionRom, AllOnes);
        Assert.Equal(0u, b.ConfigRead(slot, ExpansionRom));
    }

    [Fact]
    public void Bar32_Sizing_ReturnsSizeMaskAndFlags_AndRestoresAddress()
    {
        using var b = new PciBench();
        (_, _, int slot) = b.AddVirtio();
        uint original = b.ConfigRead(slot, Bar0);
        Assert.Equal(X86Layout.Pci32WindowStart, original & ~0xFu);
        Assert.Equal(0u, original & 0xF);                         // 32-bit, non-prefetchable memory
        b.ConfigWrite(slot, Bar0, AllOnes);
        Assert.Equal(0xFFFF_8000u, b.ConfigRead(slot, Bar0));     // 32 KiB
        b.ConfigWrite(slot, Bar0, original);
        Assert.Equal(original, b.ConfigRead(slot, Bar0));
        // Low address bits below the size are not writable.
        b.ConfigWrite(slot, Bar0, 0xD000_1234);
        Assert.Equal(0xD000_0000u, b.ConfigRead(slot, Bar0));
    }

    [Fact]
    public void Bar64Prefetchable_Sizing_CoversBothHalves()
    {
        using var b = new PciBench();
        using var region = new Vmm.Core.Memory.SharedMemoryRegion(0, 1 << 20, "test-shm");
        (var pci, _, int slot) = b.AddVirtio(regions: [region]);
        int bar2 = Bar0 + 8;
        uint lo = b.ConfigRead(slot, bar2), hi = b.ConfigRead(slot, bar2 + 4);
        Assert.Equal(0xCu, lo & 0xF);                              // 64-bit, prefetchable
        ulong address = ((ulong)hi << 32) | (lo & ~0xFu);
        Assert.Equal(X86Layout.Pci64WindowStart(PciBench.RamSize), address);
        b.ConfigWrite(slot, bar2, AllOnes);
        b.ConfigWrite(slot, bar2 + 4, AllOnes);
        Assert.Equal(0xFFF0_000Cu, b.ConfigRead(slot, bar2));     // 1 MiB
        Assert.Equal(AllOnes, b.ConfigRead(slot, bar2 + 4));
        Assert.Equal(1UL << 20, pci.GetBarSize(2));
    }

    [Fact]
    public void Bar64_LargerThan4GiB_SizesInTheHighDword()
    {
        using var b = new PciBench();
        using var region = new Vmm.Core.Memory.SharedMemoryRegion(0, 8UL << 30, "test-shm-8g");
        (_, _, int slot) = b.AddVirtio(regions: [region]);
        b.ConfigWrite(slot, Bar0 + 8, AllOnes);
        b.ConfigWrite(slot, Bar0 + 12, AllOnes);
        Assert.Equal(0x0000_000Cu, b.ConfigRead(slot, Bar0 + 8));
        Assert.Equal(0xFFFF_FFFEu, b.ConfigRead(slot, Bar0 + 12)); // 8 GiB
    }

    [Fact]
    public void Bars_AreRegisteredOnTheBus_FollowMemoryEnable_AndMoves()
    {
        using var b = new PciBench();
        (var pci, _, int slot) = b.AddVirtio();
        ulong bar = pci.GetBarAddress(0);
        // Not decoded until the guest enables memory space.
        Span<byte> probe = stackalloc byte[4];
        Assert.False(b.Mmio.Read(bar, probe));
        b.ConfigWrite(slot, Command, CommandMemorySpace, 2);
        Assert.True(pci.IsBarMapped(0));
        Assert.Equal(2UL, b.MmioRead(bar + 0x12, 2));             // num_queues through the common config
        // Move the BAR while enabled.
        ulong moved = bar + 0x10_0000;
        b.ConfigWrite(slot, Bar0, (uint)moved);
        Assert.False(b.Mmio.Read(bar + 0x12, probe[..2]));
        Assert.Equal(2UL, b.MmioRead(moved + 0x12, 2));
        // Disable memory space: gone.
        b.ConfigWrite(slot, Command, 0, 2);
        Assert.False(b.Mmio.Read(moved + 0x12, probe[..2]));
        Assert.False(pci.IsBarMapped(0));
    }

    [Fact]
    public void BarMovedOntoAnotherDevice_StaysUndecoded_InsteadOfFailing()
    {
        using var b = new PciBench();
        (var a, _, int slotA) = b.AddVirtio();
        (var c, _, int slotC) = b.AddVirtio();
        b.ConfigWrite(slotA, Command, CommandMemorySpace, 2);
        b.ConfigWrite(slotC, Command, CommandMemorySpace, 2);
        b.ConfigWrite(slotC, Bar0, (uint)a.GetBarAddress(0));     // overlap
        Assert.False(c.IsBarMapped(0));
        Assert.True(a.IsBarMapped(0));
        b.ConfigWrite(slotC, Bar0, 0xD000_0000);                  // move away: decoded again
        Assert.True(c.IsBarMapped(0));
    }

    [Fact]
    public void BarAllocator_AlignsNaturally_AndRefusesOverflow()
    {
        var alloc = new PciBarAllocator(0xC000_0000, 0x10_0000, 0x1_0000_0000, 0x1_0000_0000);
        Assert.Equal(0xC000_0000UL, alloc.Allocate(0x1000, false));
        Assert.Equal(0xC001_0000UL, alloc.Allocate(0x10000, false));
        Assert.Equal(0x1_0000_0000UL, alloc.Allocate(0x1000, true));
        Assert.Equal(0x1_8000_0000UL, alloc.Allocate(0x8000_0000, true));
        Assert.Throws<InvalidOperationException>(() => alloc.Allocate(0x10_0000, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => alloc.Allocate(0x3000, false));
    }

    [Fact]
    public void IntxLine_AssignedPerSlot()
    {
        using var b = new PciBench();
        (_, _, int slot) = b.AddVirtio();
        int gsi = PciRoot.IntxGsiForSlot(slot);
        Assert.Equal((uint)gsi, b.ConfigRead(slot, InterruptLine, 1));
        Assert.True(b.Lines.ContainsKey(gsi));
    }

    [Fact]
    public void ArbitraryConfigAccesses_NeverThrow()
    {
        using var b = new PciBench();
        (_, _, int slot) = b.AddVirtio();
        var rng = new Random(7);
        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i < 20000; i++)
        {
            int width = 1 << rng.Next(0, 4);
            ulong offset = (ulong)rng.Next(0, 0x1000) + ((ulong)(rng.Next(0, 3) == 0 ? slot : rng.Next(0, 32)) << 15);
            rng.NextBytes(buf);
            // Never touch the command register's memory bit from here: BAR moves are covered elsewhere.
            b.Mmio.Write(X86Layout.PciEcamStart + offset, buf[..width]);
            b.Mmio.Read(X86Layout.PciEcamStart + offset, buf[..width]);
        }
    }
}
