namespace Vmm.Core.Memory;

/// <summary>A guest-physical address. Arithmetic is checked: a guest-supplied address plus a guest-supplied
/// length must never wrap around to a small value that passes a bounds check.</summary>
public readonly record struct GuestAddress(ulong Value) : IComparable<GuestAddress>
{
    /// <summary>Adds <paramref name="offset"/>; returns false when the sum would overflow 64 bits.</summary>
    public bool TryAdd(ulong offset, out GuestAddress result)
    {
        ulong sum = Value + offset;
        result = new GuestAddress(sum);
        return sum >= Value;
    }

    /// <summary>Adds <paramref name="offset"/>; throws <see cref="OverflowException"/> on wrap-around.</summary>
    public GuestAddress Add(ulong offset) => new(checked(Value + offset));

    public bool IsAligned(ulong alignment) => (Value & (alignment - 1)) == 0;

    public int CompareTo(GuestAddress other) => Value.CompareTo(other.Value);

    public static bool operator <(GuestAddress a, GuestAddress b) => a.Value < b.Value;
    public static bool operator >(GuestAddress a, GuestAddress b) => a.Value > b.Value;
    public static bool operator <=(GuestAddress a, GuestAddress b) => a.Value <= b.Value;
    public static bool operator >=(GuestAddress a, GuestAddress b) => a.Value >= b.Value;

    public override string ToString() => $"0x{Value:x}";
}
