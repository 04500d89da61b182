using Vmm.Core.Events;
using Vmm.Core.Platform;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>
/// Owns the VM's whole GSI routing table. KVM_SET_GSI_ROUTING replaces the table, so the kernel's default routes
/// (GSIs 0–15 to the PIC and IOAPIC, 16–23 to the IOAPIC) are kept in it and MSI routes are added from GSI 24 up.
/// Each vector is an eventfd bound with KVM_IRQFD, so <see cref="IMsiVector.Trigger"/> is one eventfd write.
/// </summary>
internal sealed unsafe class KvmMsiController : IMsiController, IDisposable
{
    public const int IoapicPins = 24;
    private const int FirstMsiGsi = IoapicPins;

    private readonly KvmVm _vm;
    private readonly Lock _lock = new();
    private readonly List<KvmIrqRoutingEntry> _defaultRoutes = new();
    private readonly SortedDictionary<uint, KvmIrqRoutingEntry> _msiRoutes = new();
    private readonly SortedSet<uint> _freeGsis = new();
    private readonly List<MsiVector> _live = new();
    private uint _nextGsi = FirstMsiGsi;

    public KvmMsiController(KvmVm vm)
    {
        _vm = vm;
        for (uint gsi = 0; gsi < IoapicPins; gsi++)
        {
            if (gsi < 16)
            {
                _defaultRoutes.Add(IrqchipRoute(gsi, gsi < 8 ? KvmConstants.IrqchipPicMaster : KvmConstants.IrqchipPicSlave, gsi % 8));
            }
            _defaultRoutes.Add(IrqchipRoute(gsi, KvmConstants.IrqchipIoapic, gsi));
        }
    }

    /// <summary>The table as last committed (for tests and diagnostics).</summary>
    internal KvmIrqRoutingEntry[] RoutingTable
    {
        get
        {
            lock (_lock)
            {
                return BuildTable();
            }
        }
    }

    public IMsiVector AllocateVector()
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
            var vector = new MsiVector(this, gsi, eventFd);
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

    private void Update(uint gsi, ulong address, uint data)
    {
        lock (_lock)
        {
            _msiRoutes[gsi] = new KvmIrqRoutingEntry
            {
                Gsi = gsi,
                Type = KvmConstants.IrqRoutingMsi,
                MsiAddressLo = (uint)address,
                MsiAddressHi = (uint)(address >> 32),
                MsiData = data,
            };
            Commit();
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
                    if (_msiRoutes.Remove(vector.Gsi))
                    {
                        Commit();
                    }
                }
            }
            finally
            {
                _msiRoutes.Remove(vector.Gsi);
                vector.EventFd.Dispose();
                _freeGsis.Add(vector.Gsi);
            }
        }
    }

    /// <summary>Pushes the full table; caller holds the lock.</summary>
    private void Commit()
    {
        KvmIrqRoutingEntry[] table = BuildTable();
        int bytes = sizeof(KvmIrqRouting) + table.Length * sizeof(KvmIrqRoutingEntry);
        byte[] managed = new byte[bytes];
        fixed (byte* p = managed)
        {
            // Safe: `managed` is sized for the header plus table.Length entries.
            ((KvmIrqRouting*)p)->Nr = (uint)table.Length;
            table.AsSpan().CopyTo(new Span<KvmIrqRoutingEntry>(p + sizeof(KvmIrqRouting), table.Length));
            _vm.Handle.Ioctl(KvmIoctls.SetGsiRouting, p, $"KVM_SET_GSI_ROUTING({table.Length} routes)");
        }
    }

    private KvmIrqRoutingEntry[] BuildTable()
    {
        var table = new KvmIrqRoutingEntry[_defaultRoutes.Count + _msiRoutes.Count];
        _defaultRoutes.CopyTo(table);
        _msiRoutes.Values.CopyTo(table, _defaultRoutes.Count);
        return table;
    }

    private static KvmIrqRoutingEntry IrqchipRoute(uint gsi, uint chip, uint pin) => new()
    {
        Gsi = gsi,
        Type = KvmConstants.IrqRoutingIrqchip,
        IrqchipId = chip,
        IrqchipPin = pin,
    };

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

    private sealed class MsiVector(KvmMsiController owner, uint gsi, EventFd eventFd) : IMsiVector
    {
        private int _disposed;

        public uint Gsi { get; } = gsi;
        public EventFd EventFd { get; } = eventFd;

        public void Update(ulong address, uint data)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            owner.Update(Gsi, address, data);
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
