using System.Buffers.Binary;
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
/// <para>Status machine: features are frozen at FEATURES_OK (refused unless VERSION_1 is accepted and nothing
/// unknown is), queues are validated and the device activated at DRIVER_OK, status 0 resets everything. A driver
/// that breaks the protocol (bad ring configuration at DRIVER_OK, or a malformed ring later reported by the device)
/// gets DEVICE_NEEDS_RESET plus a configuration-change interrupt. Writes that the state forbids are ignored.</para>
/// </summary>
public sealed class VirtioPciDevice : PciDevice, IPciInterruptSource, IVirtioNotifier, IDisposable
{
    /// <summary>Ring features the queue implementation supports; anything else ring-related is not offered.</summary>
    private const ulong UnsupportedTransportFeatures =
        (1UL << VirtioFeatures.RingPackedBit) | (1UL << 35 /* IN_ORDER */) | (1UL << 38 /* NOTIFICATION_DATA */)
        | (1UL << 40 /* RING_RESET */) | (1UL << VirtioFeatures.AccessPlatformBit);

    private readonly IVirtioDevice _device;
    private readonly GuestMemory _memory;
    private readonly IIoEventRegistrar? _ioEvents;
    private readonly VirtQueue[] _queues;
    private readonly EventFd[] _queueEvents;
    private readonly ushort[] _queueVectors;
    private readonly IDisposable?[] _ioEventRegistrations;
    private readonly MsixTable _msix;
    private readonly int _msixCapOffset;
    private readonly int _pciCfgCapOffset;
    private readonly Lock _commonLock = new();
    private readonly ulong _offeredFeatures;
    private readonly ulong[] _shmOffsets;
    private readonly KeyValuePair<string, object?> _metricsTag;
    private IInterruptLine? _intx;
    private uint _deviceFeatureSelect;
    private uint _driverFeatureSelect;
    private ulong _driverFeatures;
    private ushort _configVector = NoVector;
    private ushort _queueSelect;
    private int _status;
    private int _isr;
    private int _configGeneration;
    private bool _activated;
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
        _memory = memory;
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
        _queueVectors = new ushort[queueCount];
        _ioEventRegistrations = new IDisposable?[queueCount];
        for (int i = 0; i < queueCount; i++)
        {
            _queues[i] = new VirtQueue(maxSizes[i]);
            _queueEvents[i] = new EventFd();
            _queueVectors[i] = NoVector;
        }
        _offeredFeatures = (device.AvailableFeatures & ~UnsupportedTransportFeatures) | VirtioFeatures.Version1;
        _metricsTag = VirtioPciMetrics.TagFor(device.DeviceType);

        // One vector per queue plus one for configuration changes.
        _msix = new MsixTable(queueCount + 1, msi);
        DefineMmioBar(Bar0Index, Bar0Size, is64Bit: false, prefetchable: false, new Bar0(this));

        AddVirtioCap(CfgTypeCommon, Bar0Index, 0, CommonOffset, CommonLength);
        AddVirtioCap(CfgTypeNotify, Bar0Index, 0, NotifyOffset, NotifyLength, NotifyOffMultiplier);
        AddVirtioCap(CfgTypeIsr, Bar0Index, 0, IsrOffset, IsrLength);
        AddVirtioCap(CfgTypeDevice, Bar0Index, 0, DeviceConfigOffset, DeviceConfigLength);

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
                AddSharedMemoryCap(regions[i].Id, _shmOffsets[i], regions[i].Size);
            }
            DefineMappedBar(SharedMemoryBarIndex, RoundUpToPowerOfTwo(Math.Max(total, 0x1000)), prefetchable: true,
                address => MapSharedMemory(memoryMapper, address));
        }

        // VIRTIO_PCI_CAP_PCI_CFG (virtio 1.2 §4.1.4.9): an access window into the BARs through config space;
        // bar, offset, length and pci_cfg_data are driver-writable.
        Span<byte> pciCfgBody = stackalloc byte[NotifyCapLength - 2];
        pciCfgBody[0] = NotifyCapLength;
        pciCfgBody[1] = CfgTypePci;
        Span<byte> pciCfgWritable = stackalloc byte[NotifyCapLength - 2];
        pciCfgWritable[2] = 0xFF;
        pciCfgWritable[6..18].Fill(0xFF);
        _pciCfgCapOffset = AddCapability(PciConfigRegisters.CapabilityIdVendor, pciCfgBody, pciCfgWritable);

        Span<byte> msixBody = stackalloc byte[10];
        BinaryPrimitives.WriteUInt16LittleEndian(msixBody, (ushort)(_msix.VectorCount - 1));
        BinaryPrimitives.WriteUInt32LittleEndian(msixBody[2..], MsixTableOffset | Bar0Index);
        BinaryPrimitives.WriteUInt32LittleEndian(msixBody[6..], MsixPbaOffset | Bar0Index);
        Span<byte> msixWritable = stackalloc byte[10];
        msixWritable[1] = 0xC0; // Message Control bits 15 (enable) and 14 (function mask)
        _msixCapOffset = AddCapability(PciConfigRegisters.CapabilityIdMsix, msixBody, msixWritable);
        WriteConfigByte(PciConfigRegisters.InterruptPin, 1); // INTA#
    }

    public IVirtioDevice Device => _device;

    public MsixTable Msix => _msix;

    /// <summary>The device status as the driver reads it.</summary>
    public DeviceStatus Status => (DeviceStatus)(byte)Volatile.Read(ref _status);

    /// <summary>The features the driver acknowledged (valid from FEATURES_OK).</summary>
    public ulong DriverFeatures => _driverFeatures;

    public ulong OfferedFeatures => _offeredFeatures;

    public IReadOnlyList<VirtQueue> Queues => _queues;

    /// <summary>The eventfd signalled when the driver notifies queue <paramref name="index"/>.</summary>
    public EventFd QueueEvent(int index) => _queueEvents[index];

    /// <summary>Why the transport set DEVICE_NEEDS_RESET (the first violation since the last reset), for logs.</summary>
    public string? NeedsResetReason { get; private set; }

    /// <summary>Raised when DEVICE_NEEDS_RESET is set, with its reason: once, however often the device reports
    /// violations before the driver resets it (a hostile driver must not turn its errors into a log flood). Device or
    /// vCPU thread.</summary>
    public event Action<string>? NeedsResetSet;

    /// <summary>Raised when the driver resets a device that was running or waiting for that reset (not for the reset
    /// of a fresh device at probe), with the DEVICE_NEEDS_RESET reason it clears, if any. vCPU thread.</summary>
    public event Action<string?>? DriverReset;

    /// <summary>The INTx line's current level (when MSI-X is not enabled).</summary>
    public bool IntxAsserted { get; private set; }

    void IPciInterruptSource.ConnectIntx(int gsi, IInterruptLine? line)
    {
        _intx = line;
        WriteConfigByte(PciConfigRegisters.InterruptLine, (byte)gsi);
    }

    private void AddVirtioCap(byte cfgType, int bar, byte id, uint offset, uint length, uint? notifyMultiplier = null)
    {
        Span<byte> body = stackalloc byte[(notifyMultiplier is null ? CapLength : NotifyCapLength) - 2];
        body[0] = (byte)(body.Length + 2); // cap_len
        body[1] = cfgType;
        body[2] = (byte)bar;
        body[3] = id;
        BinaryPrimitives.WriteUInt32LittleEndian(body[6..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body[10..], length);
        if (notifyMultiplier is uint m)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body[14..], m);
        }
        AddCapability(PciConfigRegisters.CapabilityIdVendor, body);
    }

    private void AddSharedMemoryCap(byte id, ulong offset, ulong length)
    {
        Span<byte> body = stackalloc byte[Cap64Length - 2];
        body[0] = Cap64Length;
        body[1] = CfgTypeSharedMemory;
        body[2] = SharedMemoryBarIndex;
        body[3] = id;
        BinaryPrimitives.WriteUInt32LittleEndian(body[6..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body[10..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[14..], (uint)(offset >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(body[18..], (uint)(length >> 32));
        AddCapability(PciConfigRegisters.CapabilityIdVendor, body);
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

    /// <summary>The PCI_CFG window's target, when it names a BAR0 access of width 1, 2 or 4 inside the BAR.</summary>
    private bool PciCfgWindow(out ulong barOffset, out int width)
    {
        int cap = _pciCfgCapOffset;
        byte bar = ConfigBytes(cap + 4, 1)[0];
        barOffset = ReadConfigDword(cap + 8);
        uint length = ReadConfigDword(cap + 12);
        width = (int)length;
        return bar == Bar0Index && length is 1 or 2 or 4 && barOffset + length <= Bar0Size && barOffset % length == 0;
    }

    protected override void OnConfigRead(int offset, int length)
    {
        int data = _pciCfgCapOffset + 16;
        if (offset < data + 4 && offset + length > data)
        {
            Span<byte> window = ConfigBytes(data, 4);
            window.Clear();
            if (PciCfgWindow(out ulong barOffset, out int width))
            {
                ReadBar0(barOffset, window[..width]);
            }
        }
    }

    protected override void OnConfigWritten(int offset, int length)
    {
        int data = _pciCfgCapOffset + 16;
        if (offset < data + 4 && offset + length > data && PciCfgWindow(out ulong barOffset, out int width))
        {
            WriteBar0(barOffset, ConfigBytes(data, width));
        }
        int control = _msixCapOffset + 2;
        if (offset <= control + 1 && offset + length > control)
        {
            ushort value = ReadConfigWord(control);
            _msix.SetControl((value & 0x8000) != 0, (value & 0x4000) != 0);
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

    // ---- IVirtioNotifier (device threads; never takes _commonLock so device.Reset can join those threads) ----

    void IVirtioNotifier.SignalUsedQueue(int queueIndex)
    {
        if ((uint)queueIndex >= (uint)_queues.Length)
        {
            return;
        }
        Interrupt(Volatile.Read(ref _queueVectors[queueIndex]), IsrQueue);
    }

    void IVirtioNotifier.SignalConfigChange()
    {
        Interlocked.Increment(ref _configGeneration);
        Interrupt(Volatile.Read(ref _configVector), IsrConfig);
    }

    void IVirtioNotifier.SignalNeedsReset(string reason) => NeedsReset(reason);

    private void NeedsReset(string reason)
    {
        int old = Interlocked.Or(ref _status, (int)DeviceStatus.DeviceNeedsReset);
        if ((old & (int)DeviceStatus.DeviceNeedsReset) != 0)
        {
            return; // already reported: the first violation is the one that matters
        }
        NeedsResetReason = reason;
        if ((old & (int)DeviceStatus.DriverOk) != 0)
        {
            Interrupt(Volatile.Read(ref _configVector), IsrConfig);
        }
        NeedsResetSet?.Invoke(reason);
    }

    private void Interrupt(ushort vector, byte isrBit)
    {
        if (_msix.Enabled)
        {
            if (vector != NoVector && _msix.Trigger(vector))
            {
                VirtioPciMetrics.CountInterrupt(_metricsTag);
            }
            return;
        }
        Interlocked.Or(ref _isr, isrBit);
        if ((ReadConfigWord(PciConfigRegisters.Command) & PciConfigRegisters.CommandIntxDisable) == 0)
        {
            IntxAsserted = true;
            _intx?.SetLevel(true);
            VirtioPciMetrics.CountInterrupt(_metricsTag);
        }
    }

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
            ReadCommon(snapshot);
            snapshot.Slice((int)offset, data.Length).CopyTo(data);
        }
        else if (offset >= IsrOffset && end <= IsrOffset + 0x1000)
        {
            data.Clear();
            if (offset == IsrOffset)
            {
                // Reading the ISR acknowledges it and deasserts INTx (virtio 1.2 §4.1.4.5).
                data[0] = (byte)Interlocked.Exchange(ref _isr, 0);
                if (IntxAsserted)
                {
                    IntxAsserted = false;
                    _intx?.SetLevel(false);
                }
            }
        }
        else if (offset >= DeviceConfigOffset && end <= DeviceConfigOffset + DeviceConfigLength)
        {
            _device.ReadConfig((uint)(offset - DeviceConfigOffset), data);
        }
        else if (offset >= MsixTableOffset && end <= MsixPbaOffset)
        {
            _msix.ReadTable(offset - MsixTableOffset, data);
        }
        else if (offset >= MsixPbaOffset && end <= Bar0Size)
        {
            _msix.ReadPba(offset - MsixPbaOffset, data);
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
            WriteCommon((int)offset, data);
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
            _msix.WriteTable(offset - MsixTableOffset, data);
        }
        // ISR, PBA and holes are read-only.
    }

    private VirtQueue? SelectedQueue => _queueSelect < _queues.Length ? _queues[_queueSelect] : null;

    private void ReadCommon(Span<byte> c)
    {
        lock (_commonLock)
        {
            c.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(c[Common.DeviceFeatureSelect..], _deviceFeatureSelect);
            uint deviceFeature = _deviceFeatureSelect switch
            {
                0 => (uint)_offeredFeatures,
                1 => (uint)(_offeredFeatures >> 32),
                _ => 0,
            };
            BinaryPrimitives.WriteUInt32LittleEndian(c[Common.DeviceFeature..], deviceFeature);
            BinaryPrimitives.WriteUInt32LittleEndian(c[Common.DriverFeatureSelect..], _driverFeatureSelect);
            uint driverFeature = _driverFeatureSelect switch
            {
                0 => (uint)_driverFeatures,
                1 => (uint)(_driverFeatures >> 32),
                _ => 0,
            };
            BinaryPrimitives.WriteUInt32LittleEndian(c[Common.DriverFeature..], driverFeature);
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.ConfigMsixVector..], _configVector);
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.NumQueues..], (ushort)_queues.Length);
            c[Common.DeviceStatus] = (byte)Volatile.Read(ref _status);
            c[Common.ConfigGeneration] = (byte)Volatile.Read(ref _configGeneration);
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueSelect..], _queueSelect);
            if (SelectedQueue is VirtQueue q)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueSize..], q.Size);
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueMsixVector..], _queueVectors[_queueSelect]);
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueEnable..], (ushort)(q.Ready ? 1 : 0));
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueNotifyOff..], _queueSelect);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDesc..], q.DescriptorTable.Value);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDriver..], q.AvailRing.Value);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDevice..], q.UsedRing.Value);
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueNotifyData..], _queueSelect);
            }
        }
    }

    private void WriteCommon(int offset, ReadOnlySpan<byte> data)
    {
        uint value = data.Length switch
        {
            1 => data[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(data),
            _ => 0,
        };
        if (data.Length == 8)
        {
            // A 64-bit write to a queue address is two halves.
            WriteCommon(offset, data[..4]);
            WriteCommon(offset + 4, data[4..]);
            return;
        }
        bool reset = false, live = false;
        string? clearedReason = null;
        lock (_commonLock)
        {
            DeviceStatus status = Status;
            bool featuresLocked = (status & (DeviceStatus.FeaturesOk | DeviceStatus.DriverOk | DeviceStatus.Failed)) != 0;
            bool queuesLocked = (status & (DeviceStatus.DriverOk | DeviceStatus.Failed)) != 0;
            VirtQueue? q = SelectedQueue;
            switch (offset, data.Length)
            {
                case (Common.DeviceFeatureSelect, 4):
                    _deviceFeatureSelect = value;
                    break;
                case (Common.DriverFeatureSelect, 4):
                    _driverFeatureSelect = value;
                    break;
                case (Common.DriverFeature, 4) when !featuresLocked:
                    if (_driverFeatureSelect == 0)
                    {
                        _driverFeatures = (_driverFeatures & ~0xFFFF_FFFFUL) | value;
                    }
                    else if (_driverFeatureSelect == 1)
                    {
                        _driverFeatures = (_driverFeatures & 0xFFFF_FFFFUL) | ((ulong)value << 32);
                    }
                    break;
                case (Common.ConfigMsixVector, 2):
                    Volatile.Write(ref _configVector, value < (uint)_msix.VectorCount ? (ushort)value : NoVector);
                    break;
                case (Common.DeviceStatus, 1):
                    reset = value == 0;
                    live = reset && (_activated || (status & DeviceStatus.DeviceNeedsReset) != 0);
                    clearedReason = NeedsResetReason;
                    if (!reset)
                    {
                        WriteStatus((byte)value);
                    }
                    break;
                case (Common.QueueSelect, 2):
                    _queueSelect = (ushort)value;
                    break;
                case (Common.QueueSize, 2) when q is not null && !queuesLocked:
                    q.Size = (ushort)value;
                    break;
                case (Common.QueueMsixVector, 2) when q is not null:
                    Volatile.Write(ref _queueVectors[_queueSelect], value < (uint)_msix.VectorCount ? (ushort)value : NoVector);
                    break;
                case (Common.QueueEnable, 2) when q is not null && !queuesLocked:
                    // Writing 0 is forbidden to drivers (virtio 1.2 §4.1.4.3.2); only enabling has an effect.
                    if (value == 1)
                    {
                        q.Ready = true;
                    }
                    break;
                case (>= Common.QueueDesc and < Common.QueueNotifyData, 4) when q is not null && !queuesLocked:
                    SetQueueAddressHalf(q, offset, value);
                    break;
            }
        }
        if (reset)
        {
            Reset();
            if (live)
            {
                DriverReset?.Invoke(clearedReason);
            }
        }
    }

    private static void SetQueueAddressHalf(VirtQueue q, int offset, uint value)
    {
        int field = offset & ~7;
        bool high = (offset & 4) != 0;
        static ulong Merge(ulong old, uint half, bool high) =>
            high ? (old & 0xFFFF_FFFFUL) | ((ulong)half << 32) : (old & ~0xFFFF_FFFFUL) | half;
        switch (field)
        {
            case Common.QueueDesc:
                q.DescriptorTable = new GuestAddress(Merge(q.DescriptorTable.Value, value, high));
                break;
            case Common.QueueDriver:
                q.AvailRing = new GuestAddress(Merge(q.AvailRing.Value, value, high));
                break;
            case Common.QueueDevice:
                q.UsedRing = new GuestAddress(Merge(q.UsedRing.Value, value, high));
                break;
        }
    }

    /// <summary>Status transitions (under <c>_commonLock</c>). Bits only accumulate; clearing needs a reset.</summary>
    private void WriteStatus(byte requested)
    {
        int current = Volatile.Read(ref _status);
        int next = current | (requested & ~(int)DeviceStatus.DeviceNeedsReset);
        if (((DeviceStatus)requested & DeviceStatus.FeaturesOk) != 0 && (current & (int)DeviceStatus.FeaturesOk) == 0)
        {
            bool acceptable = (_driverFeatures & ~_offeredFeatures) == 0 && (_driverFeatures & VirtioFeatures.Version1) != 0;
            if (!acceptable)
            {
                // The driver re-reads status and sees FEATURES_OK clear (virtio 1.2 §3.1.1 step 6).
                next &= ~(int)DeviceStatus.FeaturesOk;
            }
        }
        bool activate = ((DeviceStatus)next & DeviceStatus.DriverOk) != 0 && (current & (int)DeviceStatus.DriverOk) == 0;
        if (activate && (next & (int)DeviceStatus.FeaturesOk) == 0)
        {
            // DRIVER_OK without FEATURES_OK is a protocol violation.
            next &= ~(int)DeviceStatus.DriverOk;
            activate = false;
        }
        Interlocked.Exchange(ref _status, next | (current & (int)DeviceStatus.DeviceNeedsReset));
        if (activate && !_activated)
        {
            Activate();
        }
    }

    private void Activate()
    {
        for (int i = 0; i < _queues.Length; i++)
        {
            VirtQueue q = _queues[i];
            if (!q.Ready)
            {
                continue;
            }
            VirtQueueError error = q.Activate(_memory, _driverFeatures);
            if (error != VirtQueueError.None)
            {
                NeedsReset($"queue {i}: {error}");
                return;
            }
        }
        _activated = true;
        _device.Activate(new VirtioActivation(_memory, _queues, _queueEvents, this, _driverFeatures));
    }

    /// <summary>Device reset (driver wrote status 0): stops the device, forgets negotiation and queue state.
    /// MSI-X table contents survive (they belong to PCI, not virtio).</summary>
    public void Reset()
    {
        lock (_commonLock)
        {
            if (_activated)
            {
                _activated = false;
                _device.Reset();
            }
            foreach (VirtQueue q in _queues)
            {
                q.Reset();
                q.Ready = false;
                q.Size = q.MaxSize;
                q.DescriptorTable = q.AvailRing = q.UsedRing = default;
            }
            for (int i = 0; i < _queueVectors.Length; i++)
            {
                Volatile.Write(ref _queueVectors[i], NoVector);
            }
            foreach (EventFd e in _queueEvents)
            {
                e.TryRead(out _);
            }
            _configVector = NoVector;
            _deviceFeatureSelect = _driverFeatureSelect = 0;
            _driverFeatures = 0;
            _queueSelect = 0;
            NeedsResetReason = null;
            Interlocked.Exchange(ref _status, 0);
            Interlocked.Exchange(ref _isr, 0);
            if (IntxAsserted)
            {
                IntxAsserted = false;
                _intx?.SetLevel(false);
            }
        }
    }

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
        _msix.Dispose();
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
