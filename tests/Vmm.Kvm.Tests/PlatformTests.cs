using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Platform;
using Vmm.Kvm.Vcpus;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

public class PlatformTests
{
    [KvmFact]
    public void MsiVectorTriggerInterruptsTheGuest()
    {
        using var guest = new TestGuest();
        IMsiVector vector = guest.Vm.Msi.AllocateVector();
        vector.Update(0xFEE0_0000, 0x40); // APIC id 0, fixed, edge, vector 0x40
        guest.Pio.Insert(new TriggerDevice(vector), 0x680, 1);
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress);
        LongModeGuest.SetGate(guest.Memory, 0x40, 0x1800);
        guest.LoadCode(64, 0x1800, a =>
        {
            a.mov(dx, TestGuest.RecordPort);
            a.mov(al, 0x40);
            a.@out(dx, al);
            a.mov(rdi, 0xFEE000B0);
            a.mov(__dword_ptr[rdi], 0); // EOI
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
            a.iretq();
        });
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            var idle = a.CreateLabel();
            a.mov(rdi, 0xFEE000F0); // spurious-interrupt vector register: enable the LAPIC
            a.mov(eax, __dword_ptr[rdi]);
            a.or(eax, 0x1FF);
            a.mov(__dword_ptr[rdi], eax);
            a.sti();
            a.mov(dx, 0x680); // ask the host to fire the MSI
            a.@out(dx, al);
            a.Label(ref idle);
            a.hlt();
            a.jmp(idle);
        });

        VmRunResult result = guest.Run(state);

        Assert.True(result.Kind == VmStopKind.ExitRequested && result.ExitCode == 0x40, result.ToString());
        Assert.Equal([(true, 0UL, 1, 0x40UL)], guest.Recorder.Snapshot());
        vector.Dispose();
    }

    [KvmFact]
    public void RoutingTableKeepsDefaultRoutesAroundMsiRoutes()
    {
        using var guest = new TestGuest();
        var msi = (KvmMsiController)guest.Vm.Msi;
        int defaults = msi.RoutingTable.Length;
        Assert.Equal(16 * 2 + 8, defaults); // GSIs 0–15 on PIC and IOAPIC, 16–23 on the IOAPIC

        IMsiVector a = msi.AllocateVector();
        IMsiVector b = msi.AllocateVector();
        a.Update(0xFEE0_1000, 0x31);
        b.Update(0xFEE0_0000, 0x32);
        KvmIrqRoutingEntry[] table = msi.RoutingTable;
        Assert.Equal(defaults + 2, table.Length);
        Assert.Contains(table, e => e.Type == KvmConstants.IrqRoutingIrqchip && e.Gsi == 4 && e.IrqchipId == KvmConstants.IrqchipIoapic && e.IrqchipPin == 4);
        Assert.Contains(table, e => e.Type == KvmConstants.IrqRoutingIrqchip && e.Gsi == 9 && e.IrqchipId == KvmConstants.IrqchipPicSlave && e.IrqchipPin == 1);
        Assert.Contains(table, e => e.Type == KvmConstants.IrqRoutingMsi && e.Gsi == 24 && e.MsiAddressLo == 0xFEE0_1000 && e.MsiData == 0x31);
        Assert.Contains(table, e => e.Type == KvmConstants.IrqRoutingMsi && e.Gsi == 25 && e.MsiData == 0x32);

        a.Dispose();
        Assert.Equal(defaults + 1, msi.RoutingTable.Length);
        IMsiVector c = msi.AllocateVector(); // reuses GSI 24
        c.Update(0xFEE0_0000, 0x33);
        Assert.Contains(msi.RoutingTable, e => e.Type == KvmConstants.IrqRoutingMsi && e.Gsi == 24 && e.MsiData == 0x33);
        Assert.Throws<ObjectDisposedException>(() => a.Update(0, 0));
        b.Dispose();
        c.Dispose();
        Assert.Equal(defaults, msi.RoutingTable.Length);
    }

    [KvmFact]
    public void A_route_KVM_refuses_masks_only_that_vector_and_is_logged_once()
    {
        var log = new List<string>();
        using var guest = new TestGuest(line => { lock (log) { log.Add(line); } });
        // With 32-bit x2APIC ids KVM refuses an MSI whose address_hi has any of bits 0–7 set: a route a guest can
        // program through the MSI-X table at any time.
        guest.Vm.EnableCapability(KvmConstants.CapX2apicApi, KvmConstants.X2apicApiUse32BitIds);
        var msi = (KvmMsiController)guest.Vm.Msi;
        IMsiVector good = msi.AllocateVector();
        IMsiVector bad = msi.AllocateVector();
        good.Update(0xFEE0_0000, 0x31);
        bad.Update(0xFEE0_0000, 0x32);

        bad.Update(0x1_FEE0_0000, 0x33);
        bad.Update(0x2_FEE0_0000, 0x34);
        bad.Trigger(); // no route: KVM injects nothing, and nothing throws

        KvmIrqRoutingEntry[] table = msi.RoutingTable;
        Assert.Contains(table, e => e.Type == KvmConstants.IrqRoutingMsi && e.Gsi == 24 && e.MsiData == 0x31);
        Assert.DoesNotContain(table, e => e.Gsi == 25);
        string refusal = Assert.Single(log, l => l.Contains("refused the MSI route", StringComparison.Ordinal));
        Assert.Contains("GSI 25", refusal);

        // A route KVM accepts unmasks the vector again.
        bad.Update(0xFEE0_0000, 0x35);
        Assert.Contains(msi.RoutingTable, e => e.Type == KvmConstants.IrqRoutingMsi && e.Gsi == 25 && e.MsiData == 0x35);
        good.Dispose();
        bad.Dispose();
    }

    [KvmFact]
    public void Reprogramming_an_msi_route_allocates_nothing()
    {
        using var guest = new TestGuest();
        IMsiVector vector = guest.Vm.Msi.AllocateVector();
        vector.Update(0xFEE0_0000, 0x40); // first use: JIT and lazy state
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (uint i = 0; i < 100; i++)
        {
            vector.Update(0xFEE0_0000, 0x40 + (i & 0xF));
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        vector.Dispose();
    }

    [KvmFact]
    public void InterruptLinesDriveTheInKernelIrqchip()
    {
        using var guest = new TestGuest();
        IInterruptLine line = guest.Vm.InterruptLine(4);
        Assert.Equal(4, line.Gsi);
        line.SetLevel(true);
        line.SetLevel(false);
        line.Trigger();
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.Vm.InterruptLine(24));
    }

    [KvmFact]
    public void MappedSharedMemoryIsVisibleToTheGuestBothWays()
    {
        using var guest = new TestGuest();
        using var shared = new SharedMemoryRegion(0, 0x1000, "kvm-test");
        BitConverter.TryWriteBytes(shared.GetSpan(0, 4), 0x0A0B0C0Du);
        using IDisposable mapping = guest.Vm.MemoryMapper.Map(0xC0000, shared.HostAddress, shared.Size);
        guest.LoadRealModeCode(a =>
        {
            a.mov(ax, 0xC000);
            a.mov(ds, ax);
            a.mov(eax, __dword_ptr[0]);
            a.mov(dx, TestGuest.RecordPort);
            a.@out(dx, eax);
            a.mov(__dword_ptr[4], 0x99887766);
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
        });

        guest.Run(TestGuest.RealModeState());

        Assert.Equal([(true, 0UL, 4, 0x0A0B0C0DUL)], guest.Recorder.Snapshot());
        Assert.Equal(0x99887766u, BitConverter.ToUInt32(shared.GetSpan(4, 4)));
    }

    [KvmFact]
    public void MapperRejectsBadOrOverlappingRanges()
    {
        using var guest = new TestGuest();
        using var shared = new SharedMemoryRegion(0, 0x2000, "kvm-test");
        IGuestMemoryMapper mapper = guest.Vm.MemoryMapper;
        Assert.Throws<ArgumentException>(() => mapper.Map(0x1000, shared.HostAddress, 0x1000)); // guest RAM
        Assert.Throws<ArgumentException>(() => mapper.Map(0xC0800, shared.HostAddress, 0x1000)); // unaligned
        Assert.Throws<ArgumentException>(() => mapper.Map(0xFFFF_FFFF_FFFF_F000, shared.HostAddress, 0x2000)); // wraps
        using IDisposable first = mapper.Map(0xC0000, shared.HostAddress, 0x2000);
        Assert.Throws<ArgumentException>(() => mapper.Map(0xC1000, shared.HostAddress, 0x1000));
        first.Dispose();
        using IDisposable again = mapper.Map(0xC1000, shared.HostAddress, 0x1000); // slot freed and reusable
    }

    [KvmFact]
    public void IoEventRegistrarRejectsBadArguments()
    {
        using var guest = new TestGuest();
        using var eventFd = new Vmm.Core.Events.EventFd();
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.Vm.IoEvents.Register(IoEventSpace.Pio, 0x10000, 1, eventFd));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.Vm.IoEvents.Register(IoEventSpace.Pio, 0xFFFF, 2, eventFd));
        Assert.Throws<ArgumentOutOfRangeException>(() => guest.Vm.IoEvents.Register(IoEventSpace.Mmio, 0xD000_0000, 3, eventFd));
    }

    private sealed class TriggerDevice(IMsiVector vector) : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Clear();

        public void Write(ulong offset, ReadOnlySpan<byte> data) => vector.Trigger();
    }
}

public class MmioIoEventTests
{
    [KvmFact]
    public void MmioIoEventFdIsSignalledAndOtherAddressesStillExit()
    {
        using var guest = new TestGuest();
        var device = new RecordingDevice();
        guest.Mmio.Insert(device, 0xA0000, 0x1000);
        using var notify = new Vmm.Core.Events.EventFd();
        using IDisposable registration = guest.Vm.IoEvents.Register(Vmm.Core.Platform.IoEventSpace.Mmio, 0xA0100, 4, notify, dataMatch: 3);
        guest.LoadRealModeCode(a =>
        {
            a.mov(ax, 0xA000);
            a.mov(ds, ax);
            a.mov(__dword_ptr[0x100], 3); // matches: eventfd, no exit
            a.mov(__dword_ptr[0x100], 4); // no match: exits to the device
            a.mov(__dword_ptr[0x104], 3); // other address: exits to the device
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
        });

        guest.Run(TestGuest.RealModeState());

        Assert.True(notify.TryRead(out ulong count));
        Assert.Equal(1UL, count);
        Assert.Equal([(true, 0x100UL, 4, 4UL), (true, 0x104UL, 4, 3UL)], device.Snapshot());
    }
}
