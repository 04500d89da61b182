using System.Buffers.Binary;

namespace Vmm.Fuzz.Targets;

/// <summary>
/// Reads a fuzzer's input as a stream of little-endian fields. Past the end every read yields zeros, so any byte
/// string decodes to some operation sequence (the fuzzer never wastes inputs on "too short").
/// </summary>
public ref struct FuzzInput(ReadOnlySpan<byte> data)
{
    private ReadOnlySpan<byte> _data = data;

    public readonly bool IsEmpty => _data.IsEmpty;

    public readonly int Remaining => _data.Length;

    public byte U8()
    {
        if (_data.IsEmpty)
        {
            return 0;
        }
        byte b = _data[0];
        _data = _data[1..];
        return b;
    }

    public bool Bool() => (U8() & 1) != 0;

    public ushort U16() => (ushort)(U8() | U8() << 8);

    public uint U32() => U16() | (uint)U16() << 16;

    public ulong U64() => U32() | (ulong)U32() << 32;

    /// <summary>Up to <paramref name="count"/> bytes (fewer at the end of the input), in place.</summary>
    public ReadOnlySpan<byte> Bytes(int count)
    {
        int n = Math.Min(Math.Max(count, 0), _data.Length);
        ReadOnlySpan<byte> piece = _data[..n];
        _data = _data[n..];
        return piece;
    }

    /// <summary>Fills <paramref name="destination"/>; zero-pads past the end of the input.</summary>
    public void Fill(Span<byte> destination)
    {
        ReadOnlySpan<byte> piece = Bytes(destination.Length);
        piece.CopyTo(destination);
        destination[piece.Length..].Clear();
    }

    /// <summary>The rest of the input.</summary>
    public ReadOnlySpan<byte> Rest()
    {
        ReadOnlySpan<byte> rest = _data;
        _data = default;
        return rest;
    }

    /// <summary>Reads a length-prefixed (u16) field, capped at <paramref name="max"/>.</summary>
    public ReadOnlySpan<byte> Field(int max) => Bytes(U16() % (max + 1));

    internal static uint ReadU32(ReadOnlySpan<byte> s, int offset) =>
        offset + 4 <= s.Length ? BinaryPrimitives.ReadUInt32LittleEndian(s[offset..]) : 0;
}
