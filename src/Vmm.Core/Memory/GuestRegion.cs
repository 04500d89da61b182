namespace Vmm.Core.Memory;

/// <summary>One contiguous range of guest RAM backed by one host mapping.</summary>
public sealed class GuestRegion
{
    private readonly HostMapping _mapping;

    internal GuestRegion(GuestAddress start, HostMapping mapping)
    {
        Start = start;
        _mapping = mapping;
    }

    public GuestAddress Start { get; }
    public ulong Size => _mapping.Size;

    /// <summary>Exclusive end; never wraps (checked at construction).</summary>
    public ulong End => Start.Value + Size;

    /// <summary>Host virtual address of <see cref="Start"/>, for registering the region as a KVM memory slot.</summary>
    public nint HostAddress => _mapping.Address;

    internal HostMapping Mapping => _mapping;

    public bool Contains(GuestAddress address, ulong length) =>
        address.Value >= Start.Value && address.Value - Start.Value <= Size && length <= Size - (address.Value - Start.Value);
}
