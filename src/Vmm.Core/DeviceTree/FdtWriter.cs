using System.Buffers.Binary;
using System.Text;

namespace Vmm.Core.DeviceTree;

/// <summary>
/// Writes a flattened device tree blob (the Devicetree Specification's DTB, version 17): a header, an empty memory
/// reservation block, the structure block (nodes and properties, big-endian, 4-byte aligned) and the strings block
/// (property names, each stored once). Nodes are opened and closed in order; <see cref="Finish"/> checks that every
/// node was closed.
/// </summary>
public sealed class FdtWriter
{
    private const uint Magic = 0xd00dfeed, Version = 17, LastCompatibleVersion = 16;
    private const uint BeginNodeToken = 1, EndNodeToken = 2, PropToken = 3, EndToken = 9;
    private const int HeaderSize = 40, ReservationBlockSize = 16;

    private readonly MemoryStream _structure = new();
    private readonly MemoryStream _strings = new();
    private readonly Dictionary<string, uint> _stringOffsets = new(StringComparer.Ordinal);
    private int _depth;
    private bool _finished;

    /// <summary>Opens a node; the root is the node named "".</summary>
    public void BeginNode(string name)
    {
        CheckOpen();
        if (_depth == 0 && name.Length != 0)
        {
            throw new InvalidOperationException("the first node must be the root, named \"\"");
        }
        if (name.Contains('\0') || name.Contains('/'))
        {
            throw new ArgumentException($"node name '{name}' must not contain '/' or NUL", nameof(name));
        }
        WriteToken(BeginNodeToken);
        WriteNulTerminated(name);
        _depth++;
    }

    /// <summary>Closes the node opened last.</summary>
    public void EndNode()
    {
        CheckOpen();
        if (_depth == 0)
        {
            throw new InvalidOperationException("no node is open");
        }
        WriteToken(EndNodeToken);
        _depth--;
    }

    /// <summary>A property with a raw value (empty for a boolean property such as <c>interrupt-controller</c>).</summary>
    public void Property(string name, ReadOnlySpan<byte> value)
    {
        CheckOpen();
        if (_depth == 0)
        {
            throw new InvalidOperationException("a property must be inside a node");
        }
        WriteToken(PropToken);
        WriteToken((uint)value.Length);
        WriteToken(StringOffset(name));
        _structure.Write(value);
        Pad();
    }

    /// <summary>An empty (boolean) property.</summary>
    public void Property(string name) => Property(name, ReadOnlySpan<byte>.Empty);

    /// <summary>A property of 32-bit cells.</summary>
    public void PropertyCells(string name, params ReadOnlySpan<uint> cells)
    {
        Span<byte> value = cells.Length <= 64 ? stackalloc byte[4 * cells.Length] : new byte[4 * cells.Length];
        for (int i = 0; i < cells.Length; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(value[(4 * i)..], cells[i]);
        }
        Property(name, value);
    }

    /// <summary>A property of 64-bit values, each two cells (high, low).</summary>
    public void PropertyU64s(string name, params ReadOnlySpan<ulong> values)
    {
        Span<byte> value = values.Length <= 32 ? stackalloc byte[8 * values.Length] : new byte[8 * values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(value[(8 * i)..], values[i]);
        }
        Property(name, value);
    }

    /// <summary>A string list property (one NUL-terminated string each).</summary>
    public void PropertyStrings(string name, params ReadOnlySpan<string> values)
    {
        var bytes = new List<byte>();
        foreach (string s in values)
        {
            if (s.Contains('\0'))
            {
                throw new ArgumentException($"property '{name}': a string must not contain NUL", nameof(values));
            }
            bytes.AddRange(Encoding.UTF8.GetBytes(s));
            bytes.Add(0);
        }
        Property(name, bytes.ToArray());
    }

    /// <summary>The blob. Every node must be closed; the writer cannot be used afterwards.</summary>
    public byte[] Finish(uint bootCpuId = 0)
    {
        CheckOpen();
        if (_depth != 0)
        {
            throw new InvalidOperationException($"{_depth} node(s) still open");
        }
        WriteToken(EndToken);
        _finished = true;
        int structOffset = HeaderSize + ReservationBlockSize;
        int stringsOffset = structOffset + (int)_structure.Length;
        int total = stringsOffset + (int)_strings.Length;
        byte[] blob = new byte[total];
        Span<byte> h = blob;
        BinaryPrimitives.WriteUInt32BigEndian(h, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], (uint)total);
        BinaryPrimitives.WriteUInt32BigEndian(h[8..], (uint)structOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[12..], (uint)stringsOffset);
        BinaryPrimitives.WriteUInt32BigEndian(h[16..], HeaderSize); // the reservation block: one (0, 0) terminator
        BinaryPrimitives.WriteUInt32BigEndian(h[20..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(h[24..], LastCompatibleVersion);
        BinaryPrimitives.WriteUInt32BigEndian(h[28..], bootCpuId);
        BinaryPrimitives.WriteUInt32BigEndian(h[32..], (uint)_strings.Length);
        BinaryPrimitives.WriteUInt32BigEndian(h[36..], (uint)_structure.Length);
        _structure.ToArray().CopyTo(blob, structOffset);
        _strings.ToArray().CopyTo(blob, stringsOffset);
        return blob;
    }

    private void CheckOpen()
    {
        if (_finished)
        {
            throw new InvalidOperationException("the blob is already finished");
        }
    }

    private uint StringOffset(string name)
    {
        if (name.Length == 0 || name.Contains('\0'))
        {
            throw new ArgumentException("a property name must be non-empty and without NUL", nameof(name));
        }
        if (!_stringOffsets.TryGetValue(name, out uint offset))
        {
            offset = (uint)_strings.Length;
            _strings.Write(Encoding.UTF8.GetBytes(name));
            _strings.WriteByte(0);
            _stringOffsets.Add(name, offset);
        }
        return offset;
    }

    private void WriteToken(uint token)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, token);
        _structure.Write(b);
    }

    private void WriteNulTerminated(string s)
    {
        _structure.Write(Encoding.UTF8.GetBytes(s));
        _structure.WriteByte(0);
        Pad();
    }

    private void Pad()
    {
        while (_structure.Length % 4 != 0)
        {
            _structure.WriteByte(0);
        }
    }
}
