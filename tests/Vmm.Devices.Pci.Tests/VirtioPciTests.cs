using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.Pci.Virtio;
using static Vmm.Devices.Pci.PciConfigRegisters;
using C = Vmm.Devices.Pci.Virtio.VirtioPciLayout.Common;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.Pci.Tests;

public sealed class VirtioPciTests
{
    private const ulong DeviceFeatureBit0 = 1UL << 0;

    /// <summary>Linux's capability walk (<c>pci_find_capability</c>/<c>pci_find_next_capability</c>): follow next
    /// pointers from 0x34, at most 48 hops, dword-aligned, collecting vendor-specific (0x09) capabilities.</summary>
    private static List<int> VendorCaps(PciBench b, int slot)
    {
        var caps = new List<int>();
        int pos = (int)b.ConfigRead(slot, CapabilitiesPointer, 1);
        for (int ttl = 48; ttl > 0 && pos >= 0x40; ttl--)
        {
            pos &= ~3;
            uint header = b.ConfigRead(slot, pos, 2);
            if ((header & 0xFF) == 0xFF)
            {
                break;
            }
            if ((header & 0xFF) == CapabilityIdVendor)
            {
                caps.Add(pos);
            }
            pos = (int)(header >> 8);
        }
        return caps;
    }

    /// <summary>Linux's <c>virtio_pci_find_capability</c>: first vendor cap of <paramref name="cfgType"/> whose BAR is
    /// a valid memory BAR.</summary>
    private static int FindVirtioCap(PciBench b, int slot, byte cfgType)
    {
        foreach (int pos in VendorCaps(b, slot))
        {
            byte type = (byte)b.ConfigRead(slot, pos + 3, 1);
            byte bar = (byte)b.ConfigRead(slot, pos + 4, 1);
            if (type == cfgType && bar < 6 && (b.ConfigRead(slot, Bar0 + 4 * bar) & 1) == 0)
            {
                return pos;
            }
        }
        return -1;
    }

    private static (VirtioPciDevice Pci, FakeVirtioDevice Dev, int Slot, ulong Bar) Setup(PciBench b, ulong features = 0,
        bool ioEvents = false, SharedMemoryRegion[]? regions = null)
    {
        (var pci, var dev, int slot) = b.AddVirtio(features: features, withIoEvents: ioEvents, regions: regions);
        b.ConfigWrite(slot, Command, CommandMemorySpace | CommandBusMaster, 2);
        return (pci, dev, slot, pci.GetBarAddress(0));
    }

    [Fact]
    public void Identity_IsModernVirtio()
    {
        using var b = new PciBench();
        (_, _, int slot, _) = Setup(b);
        Assert.Equal(0x1AF4u, b.ConfigRead(slot, VendorId, 2));
        Assert.Equal(0x1040u + (uint)VirtioDeviceType.Rng, b.ConfigRead(slot, DeviceId, 2));
        Assert.True(b.ConfigRead(slot, RevisionId, 1) >= 1);
        Assert.Equal(1u, b.ConfigRead(slot, InterruptPin, 1));
    }

    [Fact]
    public void VirtioCapabilities_AreWhereLinuxLooks()
    {
        using var b = new PciBench();
        (_, _, int slot, _) = Setup(b);
        (byte type, uint offset, uint length)[] expected =
        [
            (VirtioPciLayout.CfgTypeCommon, 0x0000, 0x40),
            (VirtioPciLayout.CfgTypeNotify, 0x3000, 0x1000),
            (VirtioPciLayout.CfgTypeIsr, 0x1000, 1),
            (VirtioPciLayout.CfgTypeDevice, 0x2000, 0x1000),
        ];
        foreach ((byte type, uint offset, uint length) in expected)
        {
            int pos = FindVirtioCap(b, slot, type);
            Assert.True(pos > 0, $"cfg_type {type} not found");
            Assert.Equal(0u, b.ConfigRead(slot, pos + 4, 1));                  // bar 0
            Assert.Equal(offset, b.ConfigRead(slot, pos + 8));
            Assert.Equal(length, b.ConfigRead(slot, pos + 12));
            Assert.Equal(type == VirtioPciLayout.CfgTypeNotify ? 20u : 16u, b.ConfigRead(slot, pos + 2, 1));
        }
        // Linux requires common length ≥ sizeof(struct virtio_pci_common_cfg) = 0x38 (0x3C with queue_reset).
        Assert.True(b.ConfigRead(slot, FindVirtioCap(b, slot, VirtioPciLayout.CfgTypeCommon) + 12) >= 0x3C);
        int notify = FindVirtioCap(b, slot, VirtioPciLayout.CfgTypeNotify);
        Assert.Equal(4u, b.ConfigRead(slot, notify + 16));                     // notify_off_multiplier
        Assert.Equal(-1, FindVirtioCap(b, slot, VirtioPciLayout.CfgTypeSharedMemory));
    }

    [Fact]
    public void SharedMemoryCapability_BytesParseAsLinuxVirtioPciFindShmCap()
    {
        using var b = new PciBench();
        using var r0 = new SharedMemoryRegion(0, 4UL << 30, "shm0");
        using var r1 = new SharedMemoryRegion(7, 1 << 20, "shm1");
        (var pci, _, int slot, _) = Setup(b, regions: [r0, r1]);

        foreach ((SharedMemoryRegion region, ulong expectedOffset) in new[] { (r0, 0UL), (r1, 4UL << 30) })
        {
            // virtio_pci_find_shm_cap: for each vendor cap read cfg_type, bar, id; match type 8 and id.
            int found = -1;
            foreach (int pos in VendorCaps(b, slot))
            {
                if (b.ConfigRead(slot, pos + 3, 1) == VirtioPciLayout.CfgTypeSharedMemory && b.ConfigRead(slot, pos + 5, 1) == region.Id)
                {
                    found = pos;
                    break;
                }
            }
            Assert.True(found > 0);
            Assert.Equal(24u, b.ConfigRead(slot, found + 2, 1));                // cap_len = sizeof(virtio_pci_cap64)
            uint bar = b.ConfigRead(slot, found + 4, 1);
            Assert.True(bar < 6);
            ulong offset = b.ConfigRead(slot, found + 8) | ((ulong)b.ConfigRead(slot, found + 16) << 32);
            ulong length = b.ConfigRead(slot, found + 12) | ((ulong)b.ConfigRead(slot, found + 20) << 32);
            Assert.Equal(expectedOffset, offset);
            Assert.Equal(region.Size, length);
            // Linux: "if (pci_resource_len(dev, bar) < *offset + *len) → error".
            Assert.True(pci.GetBarSize((int)bar) >= offset + length);
            Assert.Equal(0xCu, b.ConfigRead(slot, Bar0 + 4 * (int)bar) & 0xF);  // 64-bit prefetchable memory BAR
        }
        Assert.Equal(8UL << 30, pci.GetBarSize(2));

        // Both regions are installed as guest memory at BAR2 + offset.
        ulong bar2 = pci.GetBarAddress(2);
        var active = b.Mapper.Maps.Where(m => m.Active).ToList();
        Assert.Contains(active, m => m.Gpa == bar2 && m.Host == r0.HostAddress && m.Size == r0.Size);
        Assert.Contains(active, m => m.Gpa == bar2 + (4UL << 30) && m.Host == r1.HostAddress && m.Size == r1.Size);
    }

    [Fact]
    public void SharedMemoryBar_MovedOrDisabled_RemapsTheRegion()
    {
        using var b = new PciBench();
        using var r0 = new SharedMemoryRegion(0, 1 << 20, "shm0");
        (var pci, _, int slot, _) = Setup(b, regions: [r0]);
        ulong old = pci.GetBarAddress(2);
        ulong moved = old + (1UL << 30);
        b.ConfigWrite(slot, Bar0 + 8, (uint)moved | 0xC);
        b.ConfigWrite(slot, Bar0 + 12, (uint)(moved >> 32));
        Assert.Equal(new[] { moved }, b.Mapper.Maps.Where(m => m.Active).Select(m => m.Gpa));
        b.ConfigWrite(slot, Command, 0, 2);
        Assert.DoesNotContain(b.Mapper.Maps, m => m.Active);
        // A mapping the hypervisor refuses (e.g. overlapping RAM) leaves the BAR undecoded, no exception.
        b.Mapper.Refuse = _ => true;
        b.ConfigWrite(slot, Command, CommandMemorySpace, 2);
        Assert.False(pci.IsBarMapped(2));
    }

    [Fact]
    public void MsixCapability_TableAndPbaInBar0()
    {
        using var b = new PciBench();
        (var pci, _, int slot, ulong bar) = Setup(b);
        int pos = (int)b.ConfigRead(slot, CapabilitiesPointer, 1);
        while (b.ConfigRead(slot, pos, 1) != CapabilityIdMsix)
        {
            pos = (int)b.ConfigRead(slot, pos + 1, 1);
            Assert.NotEqual(0, pos);
        }
        Assert.Equal(2u, b.ConfigRead(slot, pos + 2, 2) & 0x7FF);               // 3 vectors (2 queues + config)
        Assert.Equal(0x4000u, b.ConfigRead(slot, pos + 4));                      // table offset, BIR 0
        Assert.Equal(0x6000u, b.ConfigRead(slot, pos + 8));                      // PBA offset, BIR 0
        // Table entries start masked.
        Assert.Equal(1UL, b.MmioRead(bar + 0x4000 + 12, 4));
        // Only enable/mask bits of Message Control are writable.
        b.ConfigWrite(slot, pos + 2, 0xFFFF, 2);
        Assert.Equal(0xC002u, b.ConfigRead(slot, pos + 2, 2));
        Assert.True(pci.Msix.Enabled);
        Assert.True(pci.Msix.FunctionMasked);
    }

    [Fact]
    public void Msix_MaskedVectorGoesPending_AndIsDeliveredOnUnmask()
    {
        using var b = new PciBench();
        (var pci, _, int slot, ulong bar) = Setup(b);
        FakeMsiVector v1 = b.Msi.Vectors[1];
        ulong entry = bar + 0x4000 + 16;
        b.MmioWrite(entry, 0xFEE0_1000, 4);
        b.MmioWrite(entry + 4, 0, 4);
        b.MmioWrite(entry + 8, 0x4041, 4);
        Assert.False(pci.Msix.Trigger(1));                                      // MSI-X not enabled → INTx fallback
        pci.Msix.SetControl(enabled: true, functionMasked: false);
        Assert.True(pci.Msix.Trigger(1));
        Assert.Equal(0, v1.Triggers);                                           // entry still masked
        Assert.Equal(2UL, b.MmioRead(bar + 0x6000, 8));                         // PBA bit 1
        b.MmioWrite(entry + 12, 0, 4);                                          // unmask
        Assert.Equal(1, v1.Triggers);
        Assert.Equal((0xFEE0_1000UL, 0x4041u), (v1.Address, v1.Data));
        Assert.Equal(0UL, b.MmioRead(bar + 0x6000, 8));
        Assert.True(pci.Msix.Trigger(1));
        Assert.Equal(2, v1.Triggers);
        // Function mask holds everything pending.
        pci.Msix.SetControl(enabled: true, functionMasked: true);
        pci.Msix.Trigger(1);
        Assert.Equal(2, v1.Triggers);
        pci.Msix.SetControl(enabled: true, functionMasked: false);
        Assert.Equal(3, v1.Triggers);
        Assert.False(pci.Msix.Trigger(99));
        // Reserved vector-control bits are not writable.
        b.MmioWrite(entry + 12, 0xFFFF_FFFE, 4);
        Assert.Equal(0UL, b.MmioRead(entry + 12, 4));
    }

    private static void Status(PciBench b, ulong bar, DeviceStatus s) => b.MmioWrite(bar + C.DeviceStatus, (byte)s, 1);

    private static DeviceStatus ReadStatus(PciBench b, ulong bar) => (DeviceStatus)b.MmioRead(bar + C.DeviceStatus, 1);

    private static void WriteDriverFeatures(PciBench b, ulong bar, ulong features)
    {
        b.MmioWrite(bar + C.DriverFeatureSelect, 0, 4);
        b.MmioWrite(bar + C.DriverFeature, (uint)features, 4);
        b.MmioWrite(bar + C.DriverFeatureSelect, 1, 4);
        b.MmioWrite(bar + C.DriverFeature, (uint)(features >> 32), 4);
    }

    [Fact]
    public void FeatureNegotiation_RequiresVersion1_AndRefusesUnknownBits()
    {
        using var b = new PciBench();
        ulong deviceFeatures = DeviceFeatureBit0 | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc | (1UL << VirtioFeatures.RingPackedBit);
        (var pci, _, _, ulong bar) = Setup(b, deviceFeatures);
        b.MmioWrite(bar + C.DeviceFeatureSelect, 0, 4);
        Assert.Equal((ulong)(uint)(DeviceFeatureBit0 | VirtioFeatures.EventIdx | VirtioFeatures.IndirectDesc), b.MmioRead(bar + C.DeviceFeature, 4));
        b.MmioWrite(bar + C.DeviceFeatureSelect, 1, 4);
        Assert.Equal(1UL, b.MmioRead(bar + C.DeviceFeature, 4));                // VERSION_1 only: packed ring not offered
        b.MmioWrite(bar + C.DeviceFeatureSelect, 2, 4);
        Assert.Equal(0UL, b.MmioRead(bar + C.DeviceFeature, 4));

        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver);
        WriteDriverFeatures(b, bar, DeviceFeatureBit0);                          // no VERSION_1
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        Assert.Equal(DeviceStatus.Acknowledge | DeviceStatus.Driver, ReadStatus(b, bar));

        WriteDriverFeatures(b, bar, VirtioFeatures.Version1 | (1UL << 5));       // bit 5 not offered
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        Assert.Equal(0, (int)(ReadStatus(b, bar) & DeviceStatus.FeaturesOk));

        WriteDriverFeatures(b, bar, VirtioFeatures.Version1 | VirtioFeatures.EventIdx);
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        Assert.Equal(DeviceStatus.FeaturesOk, ReadStatus(b, bar) & DeviceStatus.FeaturesOk);
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, pci.DriverFeatures);
        // Frozen after FEATURES_OK.
        WriteDriverFeatures(b, bar, VirtioFeatures.Version1);
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, pci.DriverFeatures);
    }

    /// <summary>Drives the full Linux-style initialisation with simulated rings in guest RAM.</summary>
    private static VirtQueueDriver[] Initialise(PciBench b, ulong bar, ulong features, bool msix, ushort queueSize = 8)
    {
        Status(b, bar, 0);
        Status(b, bar, DeviceStatus.Acknowledge);
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver);
        WriteDriverFeatures(b, bar, features);
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        Assert.True((ReadStatus(b, bar) & DeviceStatus.FeaturesOk) != 0);
        if (msix)
        {
            b.MmioWrite(bar + C.ConfigMsixVector, 2, 2);
            Assert.Equal(2UL, b.MmioRead(bar + C.ConfigMsixVector, 2));
        }
        ushort count = (ushort)b.MmioRead(bar + C.NumQueues, 2);
        var drivers = new VirtQueueDriver[count];
        for (ushort q = 0; q < count; q++)
        {
            b.MmioWrite(bar + C.QueueSelect, q, 2);
            Assert.Equal(16UL, b.MmioRead(bar + C.QueueSize, 2));                // device maximum
            b.MmioWrite(bar + C.QueueSize, queueSize, 2);
            var ring = new GuestAddress(0x10000UL * (ulong)(q + 1));
            drivers[q] = new VirtQueueDriver(b.Memory, ring, queueSize, new GuestAddress(0x100000UL * (ulong)(q + 1)), 0x80000,
                (features & VirtioFeatures.EventIdx) != 0);
            // Linux writes 64-bit addresses as two 32-bit halves.
            foreach ((int field, GuestAddress a) in new[] { (C.QueueDesc, drivers[q].DescriptorTable), (C.QueueDriver, drivers[q].AvailRing), (C.QueueDevice, drivers[q].UsedRing) })
            {
                b.MmioWrite(bar + (ulong)field, (uint)a.Value, 4);
                b.MmioWrite(bar + (ulong)field + 4, (uint)(a.Value >> 32), 4);
            }
            if (msix)
            {
                b.MmioWrite(bar + C.QueueMsixVector, q, 2);
                Assert.Equal(q, (ushort)b.MmioRead(bar + C.QueueMsixVector, 2));
            }
            Assert.Equal(q, (ushort)b.MmioRead(bar + C.QueueNotifyOff, 2));
            b.MmioWrite(bar + C.QueueEnable, 1, 2);
        }
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk);
        return drivers;
    }

    [Fact]
    public void DriverOk_ActivatesDevice_WithValidatedQueues_AndNotifyReachesTheQueueEvent()
    {
        using var b = new PciBench();
        (var pci, var dev, _, ulong bar) = Setup(b, VirtioFeatures.EventIdx);
        VirtQueueDriver[] drivers = Initialise(b, bar, VirtioFeatures.Version1 | VirtioFeatures.EventIdx, msix: true);
        Assert.Equal(1, dev.Activations);
        VirtioActivation act = dev.Activation!;
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, act.AckedFeatures);
        Assert.All(act.Queues, q => Assert.True(q.IsActive));
        Assert.True(act.Queues[0].EventIdxEnabled);
        Assert.Equal((ushort)8, act.Queues[1].Size);

        // A chain submitted by the simulated driver pops on the device side.
        drivers[1].Submit("ping"u8, 8);
        b.MmioWrite(bar + 0x3000 + 4 * 1, 1, 2);                                  // notify queue 1
        Assert.True(act.QueueEvents[1].TryRead(out ulong kicks));
        Assert.Equal(1UL, kicks);
        Assert.False(act.QueueEvents[0].TryRead(out _));
        Assert.True(act.Queues[1].TryPop(out DescriptorChain chain, out _));
        Assert.Equal(4u, chain.ReadableLength);

        // Completion interrupt goes to queue 1's MSI-X vector once MSI-X is enabled and unmasked.
        chain.Complete(0);
        b.MmioWrite(bar + 0x4000 + 16 + 12, 0, 4);
        pci.Msix.SetControl(true, false);
        act.Notifier.SignalUsedQueue(1);
        Assert.Equal(1, b.Msi.Vectors[1].Triggers);
        Assert.Equal(0, b.Msi.Vectors[0].Triggers);
    }

    [Fact]
    public void QueueNotify_IsBoundToIoEventFds_AndFollowsBar0Moves()
    {
        using var b = new PciBench();
        (var pci, _, int slot, ulong bar) = Setup(b, ioEvents: true);
        Assert.Equal(new[] { bar + 0x3000, bar + 0x3004 }, b.IoEvents.ActiveAddresses().Order());
        Assert.All(b.IoEvents.Registrations, r => Assert.Equal(2u, r.Length));
        Assert.Same(pci.QueueEvent(1), b.IoEvents.Registrations.Single(r => r.Active && r.Address == bar + 0x3004).Fd);
        ulong moved = bar + 0x20_0000;
        b.ConfigWrite(slot, Bar0, (uint)moved);
        Assert.Equal(new[] { moved + 0x3000, moved + 0x3004 }, b.IoEvents.ActiveAddresses().Order());
    }

    [Fact]
    public void VectorsOutOfRange_ReadBackAsNoVector()
    {
        using var b = new PciBench();
        (_, _, _, ulong bar) = Setup(b);
        b.MmioWrite(bar + C.ConfigMsixVector, 3, 2);
        Assert.Equal(0xFFFFUL, b.MmioRead(bar + C.ConfigMsixVector, 2));
        b.MmioWrite(bar + C.QueueSelect, 0, 2);
        b.MmioWrite(bar + C.QueueMsixVector, 0x7FF, 2);
        Assert.Equal(0xFFFFUL, b.MmioRead(bar + C.QueueMsixVector, 2));
        // A queue index past num_queues reads size 0 and ignores writes.
        b.MmioWrite(bar + C.QueueSelect, 9, 2);
        Assert.Equal(0UL, b.MmioRead(bar + C.QueueSize, 2));
        b.MmioWrite(bar + C.QueueSize, 4, 2);
        Assert.Equal(0UL, b.MmioRead(bar + C.QueueSize, 2));
    }

    [Fact]
    public void BadRingAtDriverOk_SetsDeviceNeedsReset_AndInterruptsConfigVector()
    {
        using var b = new PciBench();
        (var pci, var dev, _, ulong bar) = Setup(b);
        pci.Msix.SetControl(true, false);
        b.MmioWrite(bar + 0x4000 + 2 * 16 + 12, 0, 4);                            // unmask config vector 2
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver);
        WriteDriverFeatures(b, bar, VirtioFeatures.Version1);
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        b.MmioWrite(bar + C.ConfigMsixVector, 2, 2);
        b.MmioWrite(bar + C.QueueSelect, 0, 2);
        b.MmioWrite(bar + C.QueueSize, 12, 2);                                    // not a power of two
        b.MmioWrite(bar + C.QueueEnable, 1, 2);
        Status(b, bar, DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk);
        Assert.True((ReadStatus(b, bar) & DeviceStatus.DeviceNeedsReset) != 0);
        Assert.Equal(0, dev.Activations);
        Assert.Equal(1, b.Msi.Vectors[2].Triggers);
        Assert.Contains("InvalidSize", pci.NeedsResetReason);
    }

    [Fact]
    public void DeviceReportedViolation_SetsNeedsReset_AndResetClearsEverything()
    {
        using var b = new PciBench();
        (var pci, var dev, _, ulong bar) = Setup(b);
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        Assert.Equal(1, dev.Activations);
        dev.Activation!.Notifier.SignalNeedsReset("queue 0: ChainTooLong");
        Assert.True((ReadStatus(b, bar) & DeviceStatus.DeviceNeedsReset) != 0);
        // MSI-X off → INTx + ISR bit 1 (configuration change).
        Assert.True(pci.IntxAsserted);
        Assert.Equal((ulong)VirtioPciLayout.IsrConfig, b.MmioRead(bar + 0x1000, 1));
        Assert.False(pci.IntxAsserted);
        Assert.Equal(0UL, b.MmioRead(bar + 0x1000, 1));                          // read-to-clear

        Status(b, bar, 0);
        Assert.Equal(1, dev.Resets);
        Assert.Equal((DeviceStatus)0, ReadStatus(b, bar));
        Assert.All(pci.Queues, q => Assert.False(q.Ready));
        Assert.Equal(0UL, pci.DriverFeatures);
        b.MmioWrite(bar + C.QueueSelect, 0, 2);
        Assert.Equal(16UL, b.MmioRead(bar + C.QueueSize, 2));
        Assert.Equal(0UL, b.MmioRead(bar + C.QueueDesc, 8));
        // And the device can be brought up again.
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        Assert.Equal(2, dev.Activations);
    }

    [Fact]
    public void NeedsReset_IsReportedOncePerEpisode_AndDriverResetsOfALiveDeviceAreReported()
    {
        // The VMM logs one line per event (issue 9): a hostile driver repeating its violation must not flood it.
        using var b = new PciBench();
        (var pci, var dev, _, ulong bar) = Setup(b);
        var needsReset = new List<string>();
        var resets = new List<string?>();
        pci.NeedsResetSet += needsReset.Add;
        pci.DriverReset += resets.Add;
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);      // starts with the reset of a fresh device
        Assert.Empty(resets);
        for (int i = 0; i < 100; i++)
        {
            dev.Activation!.Notifier.SignalNeedsReset($"queue 0: ChainTooLong #{i}");
        }
        Assert.Equal(["queue 0: ChainTooLong #0"], needsReset);
        Assert.Equal("queue 0: ChainTooLong #0", pci.NeedsResetReason);
        Status(b, bar, 0);
        Status(b, bar, 0);                                              // a second reset of a reset device: nothing
        Assert.Equal(["queue 0: ChainTooLong #0"], resets);
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        Status(b, bar, 0);                                              // a running device, no violation
        Assert.Equal(["queue 0: ChainTooLong #0", null], resets);
        Assert.Single(needsReset);
    }

    [Fact]
    public void IntxFallback_UsedQueueSetsIsrBit0_AndAssertsTheLine()
    {
        using var b = new PciBench();
        (var pci, var dev, int slot, ulong bar) = Setup(b);
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        FakeInterruptLine line = b.Lines[PciRoot.IntxGsiForSlot(slot)];
        dev.Activation!.Notifier.SignalUsedQueue(0);
        Assert.True(line.Level);
        Assert.Equal((ulong)VirtioPciLayout.IsrQueue, b.MmioRead(bar + 0x1000, 1));
        Assert.False(line.Level);
        // INTx disable in the command register suppresses the line (ISR still records it).
        b.ConfigWrite(slot, Command, CommandMemorySpace | CommandIntxDisable, 2);
        dev.Activation!.Notifier.SignalUsedQueue(0);
        Assert.False(line.Level);
    }

    [Fact]
    public void Interrupts_are_counted_by_device_type_when_raised()
    {
        using var b = new PciBench();
        (var pci, var dev, int slot, ulong bar) = Setup(b);
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        // Other tests raise interrupts in parallel: count only those raised on this thread.
        int thread = Environment.CurrentManagedThreadId;
        long rng = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == Vmm.Core.Metrics.VmmMeter.Name && instrument.Name == VirtioPciMetrics.InterruptsName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, measurement, tags, _) =>
        {
            if (Environment.CurrentManagedThreadId == thread && tags.Length == 1
                && tags[0].Key == VirtioPciMetrics.TypeTag && tags[0].Value is "rng")
            {
                rng += measurement;
            }
        });
        listener.Start();

        dev.Activation!.Notifier.SignalUsedQueue(0);
        dev.Activation!.Notifier.SignalConfigChange();
        Assert.Equal(2, rng);
        // INTx disabled in the command register: nothing reaches the guest, nothing is counted.
        b.ConfigWrite(slot, Command, CommandMemorySpace | CommandIntxDisable, 2);
        dev.Activation!.Notifier.SignalUsedQueue(0);
        Assert.Equal(2, rng);
    }

    [Fact]
    public void QueueConfiguration_IsFrozenAfterDriverOk()
    {
        using var b = new PciBench();
        (var pci, _, _, ulong bar) = Setup(b);
        Initialise(b, bar, VirtioFeatures.Version1, msix: false);
        GuestAddress desc = pci.Queues[0].DescriptorTable;
        b.MmioWrite(bar + C.QueueSelect, 0, 2);
        b.MmioWrite(bar + C.QueueDesc, 0xE000_0000, 4);
        b.MmioWrite(bar + C.QueueSize, 2, 2);
        Assert.Equal(desc, pci.Queues[0].DescriptorTable);
        Assert.Equal((ushort)8, pci.Queues[0].Size);
    }

    [Fact]
    public void DeviceConfig_IsForwardedToTheDevice()
    {
        using var b = new PciBench();
        (_, _, _, ulong bar) = Setup(b);
        Assert.Equal(0x0807_0605_0403_0201UL, b.MmioRead(bar + 0x2000, 8));
        Assert.Equal(0UL, b.MmioRead(bar + 0x2000 + 8, 4));
    }

    [Fact]
    public void ArbitraryBar0Accesses_NeverThrow()
    {
        using var b = new PciBench();
        (_, _, _, ulong bar) = Setup(b);
        var rng = new Random(3);
        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i < 50000; i++)
        {
            int width = 1 << rng.Next(0, 4);
            ulong offset = (ulong)rng.Next(0, 0x8000 - 8);
            rng.NextBytes(buf);
            b.Mmio.Write(bar + offset, buf[..width]);
            b.Mmio.Read(bar + offset, buf[..width]);
        }
    }
}

public sealed class VirtioPciCfgWindowTests
{
    [Fact]
    public void PciCfgCapability_ReachesBar0ThroughConfigSpace()
    {
        using var b = new PciBench();
        (var pci, _, int slot) = b.AddVirtio();
        int pos = -1;
        for (int p = (int)b.ConfigRead(slot, PciConfigRegisters.CapabilitiesPointer, 1); p != 0; p = (int)b.ConfigRead(slot, p + 1, 1))
        {
            if (b.ConfigRead(slot, p, 1) == PciConfigRegisters.CapabilityIdVendor && b.ConfigRead(slot, p + 3, 1) == VirtioPciLayout.CfgTypePci)
            {
                pos = p;
            }
        }
        Assert.True(pos > 0);
        Assert.Equal(20u, b.ConfigRead(slot, pos + 2, 1));
        // Read num_queues (common cfg 0x12, 2 bytes) through the window, without memory decoding enabled.
        b.ConfigWrite(slot, pos + 4, 0, 1);
        b.ConfigWrite(slot, pos + 8, 0x12);
        b.ConfigWrite(slot, pos + 12, 2);
        Assert.Equal(2u, b.ConfigRead(slot, pos + 16) & 0xFFFF);
        // Write queue_select = 1 through the window and read it back directly.
        b.ConfigWrite(slot, pos + 8, 0x16);
        b.ConfigWrite(slot, pos + 16, 1, 2);
        b.ConfigWrite(slot, PciConfigRegisters.Command, PciConfigRegisters.CommandMemorySpace, 2);
        Assert.Equal(1UL, b.MmioRead(pci.GetBarAddress(0) + 0x16, 2));
        // A window that names another BAR, a bad width or runs past the BAR does nothing and reads zero.
        b.ConfigWrite(slot, pos + 12, 3);
        Assert.Equal(0u, b.ConfigRead(slot, pos + 16));
        b.ConfigWrite(slot, pos + 12, 4);
        b.ConfigWrite(slot, pos + 8, 0x7FFE);
        Assert.Equal(0u, b.ConfigRead(slot, pos + 16));
    }
}
