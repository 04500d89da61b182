using Vmm.Core.Memory;

namespace Vmm.Core.Virtio.Queues;

/// <summary>
/// A split virtqueue (virtio 1.2 §2.7). The transport writes the driver-chosen configuration (size, ring
/// addresses, ready); the device pops descriptor chains and adds used entries.
/// </summary>
public sealed partial class VirtQueue
{
    public VirtQueue(ushort maxSize)
    {
        MaxSize = maxSize;
        Size = maxSize;
    }

    public ushort MaxSize { get; }

    /// <summary>Driver-chosen size (≤ <see cref="MaxSize"/>; validated at activation).</summary>
    public ushort Size { get; set; }

    public bool Ready { get; set; }

    public GuestAddress DescriptorTable { get; set; }
    public GuestAddress AvailRing { get; set; }
    public GuestAddress UsedRing { get; set; }
}
