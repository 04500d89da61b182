using System.Buffers.Binary;
using Vmm.Core.Bus;
using static Vmm.Devices.Pci.PciConfigRegisters;

namespace Vmm.Devices.Pci;

/// <summary>
/// A PCI function with a type-0 header: 256 bytes of configuration space in which every register has a writable
/// bit mask (read-only bits ignore writes), BAR sizing and placement (32/64-bit, prefetchable), a capability list,
/// and BAR (re)registration on the MMIO bus whenever the guest moves a BAR or toggles memory decoding.
/// Configuration accesses arrive on vCPU threads and are serialised by a per-function lock; any offset and width
/// is accepted (out-of-range bytes read as zero, writes to them are ignored).
/// </summary>
public abstract class PciDevice
{
    private readonly byte[] _config = new byte[ConfigSpaceSize];
    private readonly byte[] _writable = new byte[ConfigSpaceSize];
    private readonly Bar[] _bars = new Bar[6];
    private int _lastCapability = -1;
    private int _nextCapabilityOffset = 0x40;
    private IoBus? _mmioBus;

    /// <summary>Guards configuration space and BAR mappings.</summary>
    protected Lock ConfigLock { get; } = new();

    protected PciDevice(ushort vendorId, ushort deviceId, uint classCode, byte revision, ushort subsystemVendorId, ushort subsystemId)
    {
        WriteConfigWord(VendorId, vendorId);
        WriteConfigWord(DeviceId, deviceId);
        _config[RevisionId] = revision;
        _config[ClassCode] = (byte)classCode;
        _config[ClassCode + 1] = (byte)(classCode >> 8);
        _config[ClassCode + 2] = (byte)(classCode >> 16);
        WriteConfigWord(SubsystemVendorId, subsystemVendorId);
        WriteConfigWord(SubsystemId, subsystemId);
        SetWritable(Command, 2, CommandIoSpace | CommandMemorySpace | CommandBusMaster | CommandParityError | CommandSerr | CommandIntxDisable);
        SetWritable(CacheLineSize, 1, 0xFF);
        SetWritable(LatencyTimer, 1, 0xFF);
        SetWritable(InterruptLine, 1, 0xFF);
    }

    /// <summary>Slot (device number) on bus 0, set when added to a <see cref="PciRoot"/>.</summary>
    public int Slot { get; internal set; } = -1;

    /// <summary>The 256-byte configuration space as currently visible (for tests and diagnostics).</summary>
    public ReadOnlySpan<byte> ConfigSpace => _config;

    /// <summary>The current guest-physical address of BAR <paramref name="index"/> (0 if unassigned or unused).</summary>
    public ulong GetBarAddress(int index)
    {
        lock (ConfigLock)
        {
            return BarAddress(index);
        }
    }

    public ulong GetBarSize(int index) => _bars[index].Size;

    /// <summary>Whether BAR <paramref name="index"/> is currently decoded (registered on the bus / mapped).</summary>
    public bool IsBarMapped(int index)
    {
        lock (ConfigLock)
        {
            return _bars[index].MappedAt is not null;
        }
    }

    // ---- Definition API for subclasses (constructor time) ----

    /// <summary>Defines an MMIO BAR whose accesses go to <paramref name="handler"/> (offsets relative to the BAR).</summary>
    protected void DefineMmioBar(int index, ulong size, bool is64Bit, bool prefetchable, IBusDevice handler) =>
        DefineBar(index, size, is64Bit, prefetchable, handler, null);

    /// <summary>Defines a 64-bit memory BAR backed by host memory that <paramref name="map"/> installs at a
    /// guest-physical address (a KVM memory slot); the returned handle is disposed when the BAR moves.</summary>
    protected void DefineMappedBar(int index, ulong size, bool prefetchable, Func<ulong, IDisposable> map) =>
        DefineBar(index, size, true, prefetchable, null, map);

    private void DefineBar(int index, ulong size, bool is64Bit, bool prefetchable, IBusDevice? handler, Func<ulong, IDisposable>? map)
    {
        if (index < 0 || index > (is64Bit ? 4 : 5) || _bars[index].Size != 0 || (index > 0 && _bars[index - 1].Is64))
        {
            throw new ArgumentOutOfRangeException(nameof(index), "BAR index unavailable");
        }
        if (size < 16 || (size & (size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "BAR size must be a power of two ≥ 16");
        }
        if (!is64Bit && size > 1UL << 31)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "32-bit BAR too large");
        }
        _bars[index] = new Bar { Size = size, Is64 = is64Bit, Prefetchable = prefetchable, Handler = handler, Map = map };
        uint flags = (is64Bit ? BarMemory64 : 0) | (prefetchable ? BarPrefetchable : 0);
        WriteConfigDword(Bar0 + 4 * index, flags);
        if (is64Bit)
        {
            _bars[index + 1] = new Bar { IsUpperHalf = true };
        }
    }

    /// <summary>Appends a capability of <paramref name="body"/>.Length + 2 bytes (id and next pointer are filled in)
    /// and returns its offset. <paramref name="writableMask"/> (same length as body, optional) marks writable bits.</summary>
    protected internal int AddCapability(byte id, ReadOnlySpan<byte> body, ReadOnlySpan<byte> writableMask = default)
    {
        int length = body.Length + 2;
        int offset = _nextCapabilityOffset;
        if (offset + length > ConfigSpaceSize)
        {
            throw new InvalidOperationException("configuration space full");
        }
        _config[offset] = id;
        _config[offset + 1] = 0;
        body.CopyTo(_config.AsSpan(offset + 2));
        if (!writableMask.IsEmpty)
        {
            writableMask.CopyTo(_writable.AsSpan(offset + 2));
        }
        if (_lastCapability < 0)
        {
            _config[CapabilitiesPointer] = (byte)offset;
            WriteConfigWord(Status, (ushort)(ReadConfigWord(Status) | StatusCapabilitiesList));
        }
        else
        {
            _config[_lastCapability + 1] = (byte)offset;
        }
        _lastCapability = offset;
        _nextCapabilityOffset = (offset + length + 3) & ~3;
        return offset;
    }

    protected void SetWritable(int offset, int length, uint mask)
    {
        for (int i = 0; i < length; i++)
        {
            _writable[offset + i] = (byte)(mask >> (8 * i));
        }
    }

    protected ushort ReadConfigWord(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(_config.AsSpan(offset));
    protected uint ReadConfigDword(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_config.AsSpan(offset));
    protected void WriteConfigWord(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_config.AsSpan(offset), value);
    protected void WriteConfigDword(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_config.AsSpan(offset), value);
    protected void WriteConfigByte(int offset, byte value) => _config[offset] = value;

    // ---- Root-facing API ----

    internal void AttachToBus(IoBus mmioBus) => _mmioBus = mmioBus;

    /// <summary>Pre-assigns BAR <paramref name="index"/> to <paramref name="address"/> (what firmware would do).</summary>
    internal void AssignBar(int index, ulong address)
    {
        lock (ConfigLock)
        {
            SetBarAddress(index, address);
            UpdateBarMappings();
        }
    }

    internal IEnumerable<(int Index, ulong Size, bool Is64)> DefinedBars()
    {
        for (int i = 0; i < _bars.Length; i++)
        {
            if (_bars[i].Size != 0)
            {
                yield return (i, _bars[i].Size, _bars[i].Is64);
            }
        }
    }

    /// <summary>Reads configuration space at <paramref name="offset"/> (any width; beyond 256 bytes reads zero).</summary>
    public void ReadConfig(int offset, Span<byte> data)
    {
        lock (ConfigLock)
        {
            if (offset < ConfigSpaceSize && offset + data.Length > 0)
            {
                OnConfigRead(Math.Max(offset, 0), Math.Min(data.Length, ConfigSpaceSize - Math.Max(offset, 0)));
            }
            for (int i = 0; i < data.Length; i++)
            {
                int o = offset + i;
                data[i] = (uint)o < ConfigSpaceSize ? _config[o] : (byte)0;
            }
        }
    }

    /// <summary>Writes configuration space honouring the writable masks, BAR sizing and side effects.</summary>
    public void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        lock (ConfigLock)
        {
            bool barsTouched = false;
            ushort oldCommand = ReadConfigWord(Command);
            for (int i = 0; i < data.Length; i++)
            {
                int o = offset + i;
                if ((uint)o >= ConfigSpaceSize)
                {
                    break;
                }
                if (o >= Bar0 && o < Bar0 + 24)
                {
                    WriteBarByte(o, data[i]);
                    barsTouched = true;
                    continue;
                }
                byte mask = _writable[o];
                _config[o] = (byte)((_config[o] & ~mask) | (data[i] & mask));
            }
            ushort newCommand = ReadConfigWord(Command);
            if (barsTouched || ((oldCommand ^ newCommand) & CommandMemorySpace) != 0)
            {
                UpdateBarMappings();
            }
            if (offset < ConfigSpaceSize && offset + data.Length > 0)
            {
                OnConfigWritten(Math.Max(offset, 0), Math.Min(data.Length, ConfigSpaceSize - Math.Max(offset, 0)));
            }
        }
    }

    /// <summary>Hook to refresh registers with read side effects (called under <see cref="ConfigLock"/> before a
    /// read is served from the configuration bytes).</summary>
    protected virtual void OnConfigRead(int offset, int length)
    {
    }

    /// <summary>Direct access to configuration bytes for subclasses' read/write hooks.</summary>
    protected Span<byte> ConfigBytes(int offset, int length) => _config.AsSpan(offset, length);

    /// <summary>Hook for capability side effects (called under <see cref="ConfigLock"/> after a write).</summary>
    protected virtual void OnConfigWritten(int offset, int length)
    {
    }

    /// <summary>Hook: BAR <paramref name="index"/> is now decoded at <paramref name="address"/> (null = not decoded).
    /// Called under <see cref="ConfigLock"/>.</summary>
    protected virtual void OnBarMapped(int index, ulong? address)
    {
    }

    protected bool MemorySpaceEnabled => (ReadConfigWord(Command) & CommandMemorySpace) != 0;

    private void WriteBarByte(int offset, byte value)
    {
        int dwordIndex = (offset - Bar0) / 4;
        int shift = 8 * ((offset - Bar0) % 4);
        ref Bar bar = ref _bars[dwordIndex];
        if (bar.Size == 0 && !bar.IsUpperHalf)
        {
            return; // unimplemented BAR: hard-wired to zero
        }
        uint current = ReadConfigDword(Bar0 + 4 * dwordIndex);
        uint merged = (current & ~(0xFFu << shift)) | ((uint)value << shift);
        uint mask;
        if (bar.IsUpperHalf)
        {
            ulong size = _bars[dwordIndex - 1].Size;
            mask = (uint)(~(size - 1) >> 32);
        }
        else
        {
            uint flags = (bar.Is64 ? BarMemory64 : 0) | (bar.Prefetchable ? BarPrefetchable : 0);
            mask = (uint)~(bar.Size - 1) & 0xFFFF_FFF0;
            merged = (merged & mask) | flags;
            WriteConfigDword(Bar0 + 4 * dwordIndex, merged);
            return;
        }
        WriteConfigDword(Bar0 + 4 * dwordIndex, merged & mask);
    }

    private ulong BarAddress(int index)
    {
        Bar bar = _bars[index];
        if (bar.Size == 0)
        {
            return 0;
        }
        ulong address = ReadConfigDword(Bar0 + 4 * index) & 0xFFFF_FFF0u;
        if (bar.Is64)
        {
            address |= (ulong)ReadConfigDword(Bar0 + 4 * (index + 1)) << 32;
        }
        return address;
    }

    private void SetBarAddress(int index, ulong address)
    {
        Bar bar = _bars[index];
        if (bar.Size == 0 || (address & (bar.Size - 1)) != 0 || (!bar.Is64 && address > uint.MaxValue))
        {
            throw new ArgumentOutOfRangeException(nameof(address), $"bad address 0x{address:x} for BAR {index}");
        }
        uint flags = (bar.Is64 ? BarMemory64 : 0) | (bar.Prefetchable ? BarPrefetchable : 0);
        WriteConfigDword(Bar0 + 4 * index, (uint)address | flags);
        if (bar.Is64)
        {
            WriteConfigDword(Bar0 + 4 * (index + 1), (uint)(address >> 32));
        }
    }

    /// <summary>Brings every BAR's bus registration in line with its address and the memory-space enable bit.
    /// A placement the bus refuses (overlap, wrap-around, a sizing pattern left enabled) leaves the BAR
    /// undecoded rather than failing the guest's config write.</summary>
    private void UpdateBarMappings()
    {
        bool enabled = MemorySpaceEnabled;
        for (int i = 0; i < _bars.Length; i++)
        {
            ref Bar bar = ref _bars[i];
            if (bar.Size == 0)
            {
                continue;
            }
            ulong address = BarAddress(i);
            bool wanted = enabled && address != 0 && address + bar.Size > address;
            ulong? target = wanted ? address : null;
            if (bar.MappedAt == target)
            {
                continue;
            }
            Unmap(ref bar);
            if (target is ulong at)
            {
                try
                {
                    if (bar.Handler is not null)
                    {
                        if (_mmioBus is null)
                        {
                            continue;
                        }
                        _mmioBus.Insert(bar.Handler, at, bar.Size);
                    }
                    else
                    {
                        bar.Mapping = bar.Map!(at);
                    }
                    bar.MappedAt = at;
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException)
                {
                    bar.MappedAt = null;
                }
            }
            OnBarMapped(i, bar.MappedAt);
        }
    }

    private void Unmap(ref Bar bar)
    {
        if (bar.MappedAt is not ulong at)
        {
            return;
        }
        if (bar.Handler is not null)
        {
            _mmioBus?.Remove(bar.Handler, at);
        }
        bar.Mapping?.Dispose();
        bar.Mapping = null;
        bar.MappedAt = null;
    }

    /// <summary>Undecodes every BAR (VM teardown).</summary>
    protected void UnmapAllBars()
    {
        lock (ConfigLock)
        {
            for (int i = 0; i < _bars.Length; i++)
            {
                Unmap(ref _bars[i]);
            }
        }
    }

    private struct Bar
    {
        public ulong Size;
        public bool Is64;
        public bool Prefetchable;
        public bool IsUpperHalf;
        public IBusDevice? Handler;
        public Func<ulong, IDisposable>? Map;
        public IDisposable? Mapping;
        public ulong? MappedAt;
    }
}
