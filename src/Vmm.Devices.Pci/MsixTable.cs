using System.Buffers.Binary;
using Vmm.Core.Platform;

namespace Vmm.Devices.Pci;

/// <summary>
/// An MSI-X table and pending-bit array (PCI 3.0 §6.8.2). Each entry is backed by an <see cref="IMsiVector"/>
/// (a KVM GSI route + irqfd); the route is reprogrammed when the guest changes an entry's address/data and delivers
/// it unmasked. A vector triggered while masked (per entry or function-wide) sets its pending bit and is delivered
/// when unmasked. Thread-safe: table accesses come from vCPU threads, triggers from device threads.
/// </summary>
public sealed class MsixTable : IDisposable
{
    public const int EntrySize = 16;

    private readonly Lock _lock = new();
    private readonly byte[] _table;
    private readonly ulong[] _pending;
    private readonly IMsiVector?[] _vectors;
    private readonly bool[] _routeDirty;

    public MsixTable(int vectorCount, IMsiController? controller)
    {
        if (vectorCount is < 1 or > 2048)
        {
            throw new ArgumentOutOfRangeException(nameof(vectorCount));
        }
        VectorCount = vectorCount;
        _table = new byte[vectorCount * EntrySize];
        _pending = new ulong[(vectorCount + 63) / 64];
        _vectors = new IMsiVector?[vectorCount];
        _routeDirty = new bool[vectorCount];
        for (int i = 0; i < vectorCount; i++)
        {
            // Entries start masked (vector control bit 0 = 1) as the spec requires.
            _table[i * EntrySize + 12] = 1;
            _vectors[i] = controller?.AllocateVector();
        }
    }

    public int VectorCount { get; }

    /// <summary>Size in bytes of the table and of the PBA (rounded up to 8-byte words).</summary>
    public int TableSize => _table.Length;
    public int PbaSize => _pending.Length * 8;

    public bool Enabled { get; private set; }
    public bool FunctionMasked { get; private set; }

    /// <summary>Applies the Message Control bits written by the guest (enable bit 15, function mask bit 14).</summary>
    public void SetControl(bool enabled, bool functionMasked)
    {
        lock (_lock)
        {
            Enabled = enabled;
            FunctionMasked = functionMasked;
            if (enabled && !functionMasked)
            {
                for (int v = 0; v < VectorCount; v++)
                {
                    DeliverIfPendingLocked(v);
                }
            }
        }
    }

    public void ReadTable(ulong offset, Span<byte> data)
    {
        lock (_lock)
        {
            for (int i = 0; i < data.Length; i++)
            {
                ulong o = offset + (ulong)i;
                data[i] = o < (ulong)_table.Length ? _table[o] : (byte)0;
            }
        }
    }

    public void WriteTable(ulong offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            for (int i = 0; i < data.Length; i++)
            {
                ulong o = offset + (ulong)i;
                if (o >= (ulong)_table.Length)
                {
                    break;
                }
                int entry = (int)(o / EntrySize), field = (int)(o % EntrySize);
                byte value = data[i];
                if (field >= 12)
                {
                    // Vector control: only the mask bit is writable.
                    value = field == 12 ? (byte)(value & 1) : (byte)0;
                }
                else if (_table[o] != value)
                {
                    _routeDirty[entry] = true;
                }
                _table[o] = value;
            }
            int first = (int)Math.Min(offset / EntrySize, (ulong)VectorCount);
            int last = (int)Math.Min((offset + (ulong)data.Length + EntrySize - 1) / EntrySize, (ulong)VectorCount);
            for (int v = first; v < last; v++)
            {
                if (!EntryMasked(v))
                {
                    UpdateRouteLocked(v);
                    if (Enabled && !FunctionMasked)
                    {
                        DeliverIfPendingLocked(v);
                    }
                }
            }
        }
    }

    public void ReadPba(ulong offset, Span<byte> data)
    {
        lock (_lock)
        {
            for (int i = 0; i < data.Length; i++)
            {
                ulong o = offset + (ulong)i;
                data[i] = o < (ulong)PbaSize ? (byte)(_pending[o / 8] >> (int)(8 * (o % 8))) : (byte)0;
            }
        }
    }

    public bool IsPending(int vector) => (uint)vector < (uint)VectorCount && (Volatile.Read(ref _pending[vector / 64]) & (1UL << (vector % 64))) != 0;

    /// <summary>The guest-programmed (address, data) of an entry.</summary>
    public (ulong Address, uint Data, bool Masked) GetEntry(int vector)
    {
        lock (_lock)
        {
            ReadOnlySpan<byte> e = _table.AsSpan(vector * EntrySize, EntrySize);
            return (BinaryPrimitives.ReadUInt64LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[8..]), (e[12] & 1) != 0);
        }
    }

    /// <summary>Fires <paramref name="vector"/> or marks it pending when masked. False for an out-of-range vector
    /// or when MSI-X is disabled (the caller falls back to INTx).</summary>
    public bool Trigger(int vector)
    {
        if ((uint)vector >= (uint)VectorCount)
        {
            return false;
        }
        lock (_lock)
        {
            if (!Enabled)
            {
                return false;
            }
            if (FunctionMasked || EntryMasked(vector))
            {
                _pending[vector / 64] |= 1UL << (vector % 64);
                return true;
            }
            _vectors[vector]?.Trigger();
            return true;
        }
    }

    private bool EntryMasked(int vector) => (_table[vector * EntrySize + 12] & 1) != 0;

    private void UpdateRouteLocked(int vector)
    {
        if (!_routeDirty[vector])
        {
            return;
        }
        _routeDirty[vector] = false;
        ReadOnlySpan<byte> e = _table.AsSpan(vector * EntrySize, EntrySize);
        _vectors[vector]?.Update(BinaryPrimitives.ReadUInt64LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[8..]));
    }

    private void DeliverIfPendingLocked(int vector)
    {
        ulong bit = 1UL << (vector % 64);
        if ((_pending[vector / 64] & bit) == 0 || EntryMasked(vector))
        {
            return;
        }
        _pending[vector / 64] &= ~bit;
        UpdateRouteLocked(vector);
        _vectors[vector]?.Trigger();
    }

    public void Dispose()
    {
        foreach (IMsiVector? v in _vectors)
        {
            v?.Dispose();
        }
    }
}
