using Vmm.Core.Bus;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using static Vmm.Devices.Pci.Virtio.VirtioPciLayout;

namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// The virtio-pci modern transport (virtio 1.2 §4.1) around any <see cref="IVirtioDevice"/>: vendor 0x1AF4,
/// device 0x1040 + type; common/notify/ISR/device-config capabilities in BAR0; MSI-X (table and PBA in BAR0) with
/// INTx + ISR as fallback when the driver does not enable MSI-X; queue notifications through ioeventfds registered
/// at the notify addresses (so kicks wake the device's thread, not the vCPU's); and one shared-memory capability
/// (cfg_type 8, <c>virtio_pci_cap64</c>) per <see cref="IVirtioDevice.SharedMemoryRegions"/> entry, backed by
/// BAR2 whose pages are the region's memfd pages installed as guest memory (<see cref="IGuestMemoryMapper"/>).
/// <para>This class is the PCI function: it routes BAR0 accesses (directly or through the PCI_CFG window) to
/// <see cref="VirtioPciCommonConfig"/> (the common configuration and the status machine), the ISR and MSI-X of
/// <see cref="VirtioPciInterrupts"/>, the device's configuration and the queue eventfds; it registers those eventfds
/// as ioeventfds where BAR0 lands, and maps BAR2. <see cref="VirtioPciCapabilities"/> lays out the capability
/// list.</para>
/// </summary>
public sealed class VirtioPciDevice : PciDevice, IPciInterruptSource, IVirtioNotifier, IDisposable
{
    private readonly IVirtioDevice _device;
    private readonly IIoEventRegistrar? _ioEvents;
    private readonly VirtQueue[] _queues;
    private readonly EventFd[] _queueEvents;
    private readonly IDisposable?[] _ioEventRegistrations;
    private readonly VirtioPciInterrupts _interrupts;
    private readonly VirtioPciCommonConfig _common;
    private readonly VirtioPciCapabilities _capabilities;
    private readonly ulong[] _shmOffsets;
    private bool _disposed;

    /// <param name="device">The device model; owned (disposed with this transport).</param>
    /// <param name="memory">Guest RAM (for queues).</param>
    /// <param name="msi">MSI vector allocator (KVM GSI routes + irqfds); null = MSI-X present but inert (tests).</param>
    /// <param name="ioEvents">Binds notify writes to the queue eventfds in KVM; null = the notify BAR handler
    /// signals the eventfds itself (slower, one vCPU exit per kick, same behaviour).</param>
    /// <param name="memoryMapper">Installs shared-memory regions as guest memory; required when the device has
    /// shared-memory regions.</param>
    public VirtioPciDevice(IVirtioDevice device, GuestMemory memory, IMsiController? msi, IIoEventRegistrar? ioEvents,
        IGuestMemoryMapper? memoryMapper)
        : base(VendorId, checked((ushort)(DeviceIdBase + (ushort)device.DeviceType)), 0xFF_00_00, Revision, VendorId, 0x1100)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _device = device;
        _ioEvents = ioEvents;
        ReadOnlySpan<ushort> maxSizes = device.QueueMaxSizes;
        int queueCount = maxSizes.Length;
        // The MSI-X table (queues + 1 entries of 16 bytes) must fit between its offset and the PBA.
        if (queueCount + 1 > (MsixPbaOffset - MsixTableOffset) / MsixTable.EntrySize)
        {
            throw new ArgumentException("too many queues", nameof(device));
        }
        _queues = new VirtQueue[queueCount];
        _queueEvents = new EventFd[queueCount];
        _ioEventRegistrations = new IDisposable?[queueCount];
        for (int i = 0; i < queueCount; i++)
        {
            _queues[i] = new VirtQueue(maxSizes[i]);
            _queueEvents[i] = new EventFd();
        }
        _interrupts = new VirtioPciInterrupts(this, queueCount, msi, device.DeviceType);
        _common = new VirtioPciCommonConfig(device, memory, _queues, _queueEvents, _interrupts, this);
        DefineMmioBar(Bar0Index, Bar0Size, is64Bit: false, prefetchable: false, new Bar0(this));

        IReadOnlyList<SharedMemoryRegion> regions = device.SharedMemoryRegions;
        _shmOffsets = new ulong[regions.Count];
        if (regions.Count > 0)
        {
            if (memoryMapper is null)
            {
                throw new ArgumentNullException(nameof(memoryMapper), "device has shared-memory regions");
            }
            ulong total = 0;
            for (int i = 0; i < regions.Count; i++)
            {
                _shmOffsets[i] = total;
                total = checked(total + regions[i].Size);
            }
            DefineMappedBar(SharedMemoryBarIndex, RoundUpToPowerOfTwo(Math.Max(total, 0x1000)), prefetchable: true,
                address => MapSharedMemory(memoryMapper, address));
        }
        _capabilities = VirtioPciCapabilities.AddTo(this, _interrupts.Msix.VectorCount, regions, _shmOffsets);
        WriteConfigByte(PciConfigRegisters.InterruptPin, 1); // INTA#
    }

    public IVirtioDevice Device => _device;

    public MsixTable Msix => _interrupts.Msix;

    /// <summary>The device status as the driver reads it.</summary>
    public DeviceStatus Status => _common.Status;

    /// <summary>The features the driver acknowledged (valid from FEATURES_OK).</summary>
    public ulong DriverFeatures => _common.DriverFeatures;

    public ulong OfferedFeatures => _common.OfferedFeatures;

    public IReadOnlyList<VirtQueue> Queues => _queues;

    /// <summary>The eventfd signalled when the driver notifies queue <paramref name="index"/>.</summary>
    public EventFd QueueEvent(int index) => _queueEvents[index];

    /// <summary>Why the transport set DEVICE_NEEDS_RESET (the first violation since the last reset), for logs.</summary>
    public string? NeedsResetReason => _common.NeedsResetReason;

    /// <summary>Raised when DEVICE_NEEDS_RESET is set, with its reason: once, however often the device reports
    /// violations before the driver resets it (a hostile driver must not turn its errors into a log flood). Device or
    /// vCPU thread.</summary>
    public event Action<string>? NeedsResetSet
    {
        add => _common.NeedsResetSet += value;
        remove => _common.NeedsResetSet -= value;
    }

    /// <summary>Raised when the driver resets a device that was running or waiting for that reset (not for the reset
    /// of a fresh device at probe), with the DEVICE_NEEDS_RESET reason it clears, if any. vCPU thread.</summary>
    public event Action<string?>? DriverReset
    {
        add => _common.DriverReset += value;
        remove => _common.DriverReset -= value;
    }

    /// <summary>The INTx line's current level (when MSI-X is not enabled).</summary>
    public bool IntxAsserted => _interrupts.IntxAsserted;

    void IPciInterruptSource.ConnectIntx(int gsi, IInterruptLine? line)
    {
        _interrupts.ConnectIntx(line);
        WriteConfigByte(PciConfigRegisters.InterruptLine, (byte)gsi);
    }

    private IDisposable MapSharedMemory(IGuestMemoryMapper mapper, ulong barAddress)
    {
        IReadOnlyList<SharedMemoryRegion> regions = _device.SharedMemoryRegions;
        var mappings = new IDisposable[regions.Count];
        int done = 0;
        try
        {
            for (; done < regions.Count; done++)
            {
                mappings[done] = regions[done].AttachGuestWindow(mapper, barAddress + _shmOffsets[done]);
            }
        }
        catch
        {
            for (int i = 0; i < done; i++)
            {
                mappings[i].Dispose();
            }
            throw;
        }
        return new CompositeDisposable(mappings);
    }

    private static ulong RoundUpToPowerOfTwo(ulong v) => v <= 1 ? 1 : 1UL << (64 - System.Numerics.BitOperations.LeadingZeroCount(v - 1));

    protected override void OnConfigRead(int offset, int length)
    {
        int data = _capabilities.PciCfgDataOffset;
        if (offset < data + 4 && offset + length > data)
        {
            Span<byte> window = ConfigBytes(data, 4);
            window.Clear();
            if (_capabilities.TryGetPciCfgTarget(ConfigSpace, out ulong barOffset, out int width))
            {
                ReadBar0(barOffset, window[..width]);
            }
        }
    }

    protected override void OnConfigWritten(int offset, int length)
    {
        int data = _capabilities.PciCfgDataOffset;
        if (offset < data + 4 && offset + length > data
            && _capabilities.TryGetPciCfgTarget(ConfigSpace, out ulong barOffset, out int width))
        {
            WriteBar0(barOffset, ConfigBytes(data, width));
        }
        int control = _capabilities.MsixControlOffset;
        if (offset <= control + 1 && offset + length > control)
        {
            ushort value = ReadConfigWord(control);
            _interrupts.Msix.SetControl((value & 0x8000) != 0, (value & 0x4000) != 0);
        }
    }

    protected override void OnBarMapped(int index, ulong? address)
    {
        if (index != Bar0Index || _ioEvents is null)
        {
            return;
        }
        for (int i = 0; i < _queues.Length; i++)
        {
            _ioEventRegistrations[i]?.Dispose();
            _ioEventRegistrations[i] = null;
        }
        if (address is not ulong bar)
        {
            return;
        }
        for (int i = 0; i < _queues.Length; i++)
        {
            // Linux writes the queue index as a 16-bit value to the queue's notify address.
            _ioEventRegistrations[i] = _ioEvents.Register(IoEventSpace.Mmio, bar + NotifyOffset + NotifyOffMultiplier * (uint)i, 2, _queueEvents[i]);
        }
    }

    // ---- IVirtioNotifier (device threads; never takes the common configuration's lock, so device.Reset can join
    // those threads) ----

    void IVirtioNotifier.SignalUsedQueue(int queueIndex) => _interrupts.SignalQueue(queueIndex);

    void IVirtioNotifier.SignalConfigChange() => _common.SignalConfigChange();

    void IVirtioNotifier.SignalNeedsReset(string reason) => _common.NeedsReset(reason);

    // ---- BAR0 ----

    private sealed class Bar0(VirtioPciDevice owner) : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => owner.ReadBar0(offset, data);

        public void Write(ulong offset, ReadOnlySpan<byte> data) => owner.WriteBar0(offset, data);
    }

    private void ReadBar0(ulong offset, Span<byte> data)
    {
        ulong end = offset + (ulong)data.Length;
        if (end <= CommonOffset + CommonLength)
        {
            Span<byte> snapshot = stackalloc byte[(int)CommonLength];
            _common.Read(snapshot);
            snapshot.Slice((int)offset, data.Length).CopyTo(data);
        }
        else if (offset >= IsrOffset && end <= IsrOffset + 0x1000)
        {
            data.Clear();
            if (offset == IsrOffset)
            {
                data[0] = _interrupts.AcknowledgeIsr();
            }
        }
        else if (offset >= DeviceConfigOffset && end <= DeviceConfigOffset + DeviceConfigLength)
        {
            _device.ReadConfig((uint)(offset - DeviceConfigOffset), data);
        }
        else if (offset >= MsixTableOffset && end <= MsixPbaOffset)
        {
            _interrupts.Msix.ReadTable(offset - MsixTableOffset, data);
        }
        else if (offset >= MsixPbaOffset && end <= Bar0Size)
        {
            _interrupts.Msix.ReadPba(offset - MsixPbaOffset, data);
        }
        else
        {
            data.Clear();
        }
    }

    private void WriteBar0(ulong offset, ReadOnlySpan<byte> data)
    {
        ulong end = offset + (ulong)data.Length;
        if (end <= CommonOffset + CommonLength)
        {
            _common.Write((int)offset, data);
        }
        else if (offset >= NotifyOffset && end <= NotifyOffset + NotifyLength)
        {
            // Only reached when no ioeventfd is registered for this address (or the write width differs).
            ulong queue = (offset - NotifyOffset) / NotifyOffMultiplier;
            if (queue < (ulong)_queues.Length)
            {
                _queueEvents[queue].Signal();
            }
        }
        else if (offset >= DeviceConfigOffset && end <= DeviceConfigOffset + DeviceConfigLength)
        {
            _device.WriteConfig((uint)(offset - DeviceConfigOffset), data);
        }
        else if (offset >= MsixTableOffset && end <= MsixPbaOffset)
        {
            _interrupts.Msix.WriteTable(offset - MsixTableOffset, data);
        }
        // ISR, PBA and holes are read-only.
    }

    /// <summary>Device reset (driver wrote status 0): stops the device, forgets negotiation and queue state.
    /// MSI-X table contents survive (they belong to PCI, not virtio).</summary>
    public void Reset() => _common.Reset();

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Reset();
        UnmapAllBars();
        foreach (IDisposable? r in _ioEventRegistrations)
        {
            r?.Dispose();
        }
        _device.Dispose();
        _interrupts.Dispose();
        foreach (EventFd e in _queueEvents)
        {
            e.Dispose();
        }
    }

    private sealed class CompositeDisposable(IDisposable[] parts) : IDisposable
    {
        public void Dispose()
        {
            foreach (IDisposable p in parts)
            {
                p.Dispose();
            }
        }
    }
}
