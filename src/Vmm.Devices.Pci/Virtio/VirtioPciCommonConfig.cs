using System.Buffers.Binary;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using static Vmm.Devices.Pci.Virtio.VirtioPciLayout;

namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// <c>struct virtio_pci_common_cfg</c> (virtio 1.2 §4.1.4.3, offsets in <see cref="VirtioPciLayout.Common"/>) and the
/// device status machine behind its device_status field.
/// <para>Status machine: features are frozen at FEATURES_OK (refused unless VERSION_1 is accepted and nothing
/// unknown is), queues are validated and the device activated at DRIVER_OK, status 0 resets everything. A driver
/// that breaks the protocol (bad ring configuration at DRIVER_OK, or a malformed ring later reported by the device)
/// gets DEVICE_NEEDS_RESET plus a configuration-change interrupt. Writes that the state forbids are ignored.</para>
/// <para>The driver's accesses (vCPU threads) are serialised by one lock; the device threads' signals
/// (<see cref="SignalConfigChange"/>, <see cref="NeedsReset"/>) never take it, so a reset can join those threads.</para>
/// </summary>
internal sealed class VirtioPciCommonConfig
{
    /// <summary>Ring features the queue implementation supports; anything else ring-related is not offered.</summary>
    private const ulong UnsupportedTransportFeatures =
        (1UL << VirtioFeatures.RingPackedBit) | (1UL << 35 /* IN_ORDER */) | (1UL << 38 /* NOTIFICATION_DATA */)
        | (1UL << 40 /* RING_RESET */) | (1UL << VirtioFeatures.AccessPlatformBit);

    private readonly IVirtioDevice _device;
    private readonly GuestMemory _memory;
    private readonly VirtQueue[] _queues;
    private readonly EventFd[] _queueEvents;
    private readonly VirtioPciInterrupts _interrupts;
    private readonly IVirtioNotifier _notifier;
    private readonly Lock _lock = new();
    private uint _deviceFeatureSelect;
    private uint _driverFeatureSelect;
    private ulong _driverFeatures;
    private ushort _queueSelect;
    private int _status;
    private int _configGeneration;
    private bool _activated;

    /// <param name="device">The device model, activated at DRIVER_OK and reset at status 0.</param>
    /// <param name="memory">Guest RAM the queues live in.</param>
    /// <param name="queues">The device's queues, configured through the queue_* fields.</param>
    /// <param name="queueEvents">The queues' notification eventfds, drained at reset.</param>
    /// <param name="interrupts">Holds the MSI-X vectors the driver chooses here.</param>
    /// <param name="notifier">What the device gets in its <see cref="VirtioActivation"/>.</param>
    public VirtioPciCommonConfig(IVirtioDevice device, GuestMemory memory, VirtQueue[] queues, EventFd[] queueEvents,
        VirtioPciInterrupts interrupts, IVirtioNotifier notifier)
    {
        _device = device;
        _memory = memory;
        _queues = queues;
        _queueEvents = queueEvents;
        _interrupts = interrupts;
        _notifier = notifier;
        OfferedFeatures = (device.AvailableFeatures & ~UnsupportedTransportFeatures) | VirtioFeatures.Version1;
    }

    public DeviceStatus Status => (DeviceStatus)(byte)Volatile.Read(ref _status);

    public ulong DriverFeatures => _driverFeatures;

    public ulong OfferedFeatures { get; }

    /// <summary>Why DEVICE_NEEDS_RESET is set (the first violation since the last reset).</summary>
    public string? NeedsResetReason { get; private set; }

    /// <summary>Raised once per DEVICE_NEEDS_RESET, with its reason.</summary>
    public event Action<string>? NeedsResetSet;

    /// <summary>Raised when the driver resets a device that was running or waiting for that reset.</summary>
    public event Action<string?>? DriverReset;

    private VirtQueue? SelectedQueue => _queueSelect < _queues.Length ? _queues[_queueSelect] : null;

    /// <summary>A configuration change: config_generation moves on so the driver re-reads a consistent copy.</summary>
    public void SignalConfigChange()
    {
        Interlocked.Increment(ref _configGeneration);
        _interrupts.SignalConfig();
    }

    /// <summary>Sets DEVICE_NEEDS_RESET and tells a running driver; only the first violation is reported.</summary>
    public void NeedsReset(string reason)
    {
        int old = Interlocked.Or(ref _status, (int)DeviceStatus.DeviceNeedsReset);
        if ((old & (int)DeviceStatus.DeviceNeedsReset) != 0)
        {
            return; // already reported: the first violation is the one that matters
        }
        NeedsResetReason = reason;
        if ((old & (int)DeviceStatus.DriverOk) != 0)
        {
            _interrupts.SignalConfig();
        }
        NeedsResetSet?.Invoke(reason);
    }

    /// <summary>Reads the whole structure into <paramref name="c"/> (<see cref="CommonLength"/> bytes), one
    /// consistent snapshot under the lock.</summary>
    public void Read(Span<byte> c)
    {
        lock (_lock)
        {
            c.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(c[Common.DeviceFeatureSelect..], _deviceFeatureSelect);
            uint deviceFeature = _deviceFeatureSelect switch
            {
                0 => (uint)OfferedFeatures,
                1 => (uint)(OfferedFeatures >> 32),
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
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.ConfigMsixVector..], _interrupts.ConfigVector);
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.NumQueues..], (ushort)_queues.Length);
            c[Common.DeviceStatus] = (byte)Volatile.Read(ref _status);
            c[Common.ConfigGeneration] = (byte)Volatile.Read(ref _configGeneration);
            BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueSelect..], _queueSelect);
            if (SelectedQueue is VirtQueue q)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueSize..], q.Size);
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueMsixVector..], _interrupts.QueueVector(_queueSelect));
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueEnable..], (ushort)(q.Ready ? 1 : 0));
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueNotifyOff..], _queueSelect);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDesc..], q.DescriptorTable.Value);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDriver..], q.AvailRing.Value);
                BinaryPrimitives.WriteUInt64LittleEndian(c[Common.QueueDevice..], q.UsedRing.Value);
                BinaryPrimitives.WriteUInt16LittleEndian(c[Common.QueueNotifyData..], _queueSelect);
            }
        }
    }

    /// <summary>A driver write of 1, 2, 4 or 8 bytes at <paramref name="offset"/>; other widths, read-only fields and
    /// writes the status forbids are ignored.</summary>
    public void Write(int offset, ReadOnlySpan<byte> data)
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
            Write(offset, data[..4]);
            Write(offset + 4, data[4..]);
            return;
        }
        bool reset = false, live = false;
        string? clearedReason = null;
        lock (_lock)
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
                    _interrupts.ConfigVector = (ushort)value;
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
                    _interrupts.SetQueueVector(_queueSelect, (ushort)value);
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

    /// <summary>Device reset: stops the device, forgets negotiation, queue state and interrupt routing.</summary>
    public void Reset()
    {
        lock (_lock)
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
            foreach (EventFd e in _queueEvents)
            {
                e.TryRead(out _);
            }
            _deviceFeatureSelect = _driverFeatureSelect = 0;
            _driverFeatures = 0;
            _queueSelect = 0;
            NeedsResetReason = null;
            Interlocked.Exchange(ref _status, 0);
            _interrupts.Reset();
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

    /// <summary>Status transitions (under the lock). Bits only accumulate; clearing needs a reset.</summary>
    private void WriteStatus(byte requested)
    {
        int current = Volatile.Read(ref _status);
        int next = current | (requested & ~(int)DeviceStatus.DeviceNeedsReset);
        if (((DeviceStatus)requested & DeviceStatus.FeaturesOk) != 0 && (current & (int)DeviceStatus.FeaturesOk) == 0)
        {
            bool acceptable = (_driverFeatures & ~OfferedFeatures) == 0 && (_driverFeatures & VirtioFeatures.Version1) != 0;
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
        _device.Activate(new VirtioActivation(_memory, _queues, _queueEvents, _notifier, _driverFeatures));
    }
}
