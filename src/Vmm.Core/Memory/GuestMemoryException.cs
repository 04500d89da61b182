namespace Vmm.Core.Memory;

/// <summary>A guest-physical range that is not entirely inside one guest RAM region (or wraps around).</summary>
public sealed class GuestMemoryException(GuestAddress address, ulong length)
    : Exception($"guest range {address}+0x{length:x} is outside guest RAM")
{
    public GuestAddress Address { get; } = address;
    public ulong Length { get; } = length;
}
