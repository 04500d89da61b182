using Vmm.Core.Events;
using Vmm.Core.Platform;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>
/// Owns the VM's whole GSI routing table. KVM_SET_GSI_ROUTING replaces the table, so the architecture's default
/// routes (x86: GSIs 0–15 to the PIC and IOAPIC, 16–23 to the IOAPIC; arm64: none) are kept in it and MSI routes are
/// added from GSI 24 up. On arm64 each MSI route also carries the device's PCI requester id, which the ITS translates
/// by (<see cref="ForDevice"/>). Each vector is an eventfd bound with KVM_IRQFD, so <see cref="IMsiVector.Trigger"/>
/// is one eventfd write. The guest reprograms routes at will (every MSI-X table write), so an update allocates
/// nothing, and a route KVM refuses masks that one vector (logged once) instead of stopping the VM.
/// </summary>
internal sealed unsafe class KvmMsiController : IMsiController, IDisposable
{
    public const int IoapicPins = Arch.X86.X86KvmArchitecture.IoapicPins;
    private const int FirstMsiGsi = IoapicPins;

    private readonly KvmVm _vm;
    private readonly Lock _lock = new();
    private readonly KvmIrqRoutingEntry[] _defaultRoutes;
    private readonly bool _routesCarryDeviceId;
    // Indexed by GSI; Type 0 means no route (a masked or never-programmed vector).
    private readonly KvmIrqRoutingEntry[] _msiRoutes = new KvmIrqRoutingEntry[KvmConstants.MaxIrqRoutes];
    // The KVM_SET_GSI_ROUTING argument, built in place on each commit: header + default routes + every MSI route.
    private readonly byte[] _routingArgument;
    private readonly SortedSet<uint> _freeGsis = new();
    private readonly List<MsiVector> _live = new();
    private uint _nextGsi = FirstMsiGsi;

    public KvmMsiController(KvmVm vm, KvmIrqRoutingEntry[] defaultRoutes, bool routesCarryDeviceId)
    {
        _vm = vm;
        _defaultRoutes = defaultRoutes;
        _routesCarryDeviceId = routesCarryDeviceId;
        int capacity = _defaultRoutes.Length + KvmConstants.MaxIrqRoutes - FirstMsiGsi;
        _routingArgument = GC.AllocateArray<byte>(sizeof(KvmIrqRouting) + capacity * sizeof(KvmIrqRoutingEntry), pinned: true);
    }

    /// <summary>Vectors for the PCI function with <paramref name="requesterId"/>; this controller itself where
    /// routes carry no device id.</summary>
    public IMsiController ForDevice(ushort requesterId) =>
        _routesCarryDeviceId ? new DeviceMsiController(this, requesterId) : this;

    /// <summary>The table as last committed (for tests and diagnostics).</summary>
    internal KvmIrqRoutingEntry[] RoutingTable
    {
        get
        {
            lock (_lock)
            {
                var table = new List<KvmIrqRoutingEntry>(_defaultRoutes);
                for (uint gsi = FirstMsiGsi; gsi < _nextGsi; gsi++)
                {
                    if (_msiRoutes[gsi].Type != 0)
                    {
                        table.Add(_msiRoutes[gsi]);
                    }
                }
                return table.ToArray();
            }
        }
    }

    public IMsiVector AllocateVector() => AllocateVector(0);

    private IMsiVector AllocateVector(ushort requesterId)
    {
        lock (_lock)
        {
            uint gsi;
            if (_freeGsis.Count > 0)
            {
                gsi = _freeGsis.Min;
                _freeGsis.Remove(gsi);
            }
            else
            {
                if (_nextGsi >= KvmConstants.MaxIrqRoutes)
                {
                    throw new InvalidOperationException("out of GSIs for MSI vectors");
                }
                gsi = _nextGsi++;
            }
            var eventFd = new EventFd();
            try
            {
                SetIrqfd(eventFd, gsi, assign: true);
            }
            catch
            {
                eventFd.Dispose();
                _freeGsis.Add(gsi);
                throw;
            }
            var vector = new MsiVector(this, gsi, eventFd, requesterId);
            _live.Add(vector);
            return vector;
        }
    }

    private void SetIrqfd(EventFd eventFd, uint gsi, bool assign)
    {
        var irqfd = new KvmIrqfd
        {
            Fd = (uint)eventFd.Handle.Fd,
            Gsi = gsi,
            Flags = assign ? 0 : KvmConstants.IrqfdFlagDeassign,
        };
        _vm.Handle.Ioctl(KvmIoctls.Irqfd, &irqfd, assign ? $"KVM_IRQFD(gsi {gsi})" : $"KVM_IRQFD(deassign gsi {gsi})");
    }

    /// <summary>Routes <paramref name="gsi"/> to the MSI (address, data); 0, or the errno KVM refused it with, in
    /// which case the GSI is left without a route: its irqfd then injects nothing until a route KVM accepts.</summary>
    private int Update(uint gsi, ulong address, uint data, ushort requesterId)
    {
        lock (_lock)
        {
            _msiRoutes[gsi] = new KvmIrqRoutingEntry
            {
                Gsi = gsi,
                Type = KvmConstants.IrqRoutingMsi,
                Flags = _routesCarryDeviceId ? KvmConstants.MsiValidDevid : 0,
                MsiAddressLo = (uint)address,
                MsiAddressHi = (uint)(address >> 32),
                MsiData = data,
                MsiDevId = _routesCarryDeviceId ? requesterId : 0u,
            };
            int refused = Commit();
            if (refused == 0)
            {
                return 0;
            }
            // KVM keeps its old table when it refuses a new one; that table may still route this GSI to the old
            // address, so commit one without it. It holds only routes KVM accepted before.
            _msiRoutes[gsi] = default;
            int again = Commit();
            if (again != 0)
            {
                throw new KvmException("KVM_SET_GSI_ROUTING", again);
            }
            return refused;
        }
    }

    private void Release(MsiVector vector)
    {
        lock (_lock)
        {
            if (!_live.Remove(vector))
            {
                return;
            }
            try
            {
                if (!_vm.Handle.IsClosed)
                {
                    SetIrqfd(vector.EventFd, vector.Gsi, assign: false);
                    if (_msiRoutes[vector.Gsi].Type != 0)
                    {
                        _msiRoutes[vector.Gsi] = default;
                        int errno = Commit();
                        if (errno != 0)
                        {
                            throw new KvmException("KVM_SET_GSI_ROUTING", errno);
                        }
                    }
                }
            }
            finally
            {
                _msiRoutes[vector.Gsi] = default;
                vector.EventFd.Dispose();
                _freeGsis.Add(vector.Gsi);
            }
        }
    }

    /// <summary>Pushes the full table, built in the preallocated argument; 0 or KVM's errno. Caller holds the lock.</summary>
    private int Commit()
    {
        fixed (byte* p = _routingArgument)
        {
            // Safe: the argument is sized for the default routes plus one route per possible MSI GSI
            // (FirstMsiGsi..MaxIrqRoutes-1), which bounds n below.
            var entries = new Span<KvmIrqRoutingEntry>(p + sizeof(KvmIrqRouting), (_routingArgument.Length - sizeof(KvmIrqRouting)) / sizeof(KvmIrqRoutingEntry));
            _defaultRoutes.CopyTo(entries);
            int n = _defaultRoutes.Length;
            for (uint gsi = FirstMsiGsi; gsi < _nextGsi; gsi++)
            {
                if (_msiRoutes[gsi].Type != 0)
                {
                    entries[n++] = _msiRoutes[gsi];
                }
            }
            *(KvmIrqRouting*)p = new KvmIrqRouting { Nr = (uint)n };
            return _vm.Handle.TryIoctl(KvmIoctls.SetGsiRouting, p, out int errno) < 0 ? errno : 0;
        }
    }

    private void LogRefusedRoute(uint gsi, ulong address, uint data, int errno) =>
        _vm.System.Log($"KVM refused the MSI route the guest programmed for GSI {gsi} (address 0x{address:x}, data 0x{data:x}): " +
                       $"errno {errno}; that vector is masked until the guest programs one KVM accepts");

    public void Dispose()
    {
        MsiVector[] live;
        lock (_lock)
        {
            live = _live.ToArray();
        }
        foreach (MsiVector v in live)
        {
            v.Dispose();
        }
    }

    private sealed class DeviceMsiController(KvmMsiController owner, ushort requesterId) : IMsiController
    {
        public IMsiVector AllocateVector() => owner.AllocateVector(requesterId);
    }

    private sealed class MsiVector(KvmMsiController owner, uint gsi, EventFd eventFd, ushort requesterId) : IMsiVector
    {
        private int _disposed;
        private int _refusalLogged;

        public uint Gsi { get; } = gsi;
        public EventFd EventFd { get; } = eventFd;

        public void Update(ulong address, uint data)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            int errno = owner.Update(Gsi, address, data, requesterId);
            if (errno != 0 && Interlocked.Exchange(ref _refusalLogged, 1) == 0)
            {
                owner.LogRefusedRoute(Gsi, address, data, errno);
            }
        }

        /// <summary>One eventfd write: KVM injects the routed MSI. Safe from any thread, allocation-free.</summary>
        public void Trigger() => EventFd.Signal();

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(this);
            }
        }
    }
}
