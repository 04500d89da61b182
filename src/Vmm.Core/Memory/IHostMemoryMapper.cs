using System.Runtime.InteropServices;

namespace Vmm.Core.Memory;

/// <summary>
/// Maps ranges of host files (a V4L2 node's buffers, dma-bufs) into a shared-memory region, so the guest reads the
/// host driver's own pages through the region's BAR: no copy. The counterpart of chromeos/virtio-media's
/// <c>VirtioMediaHostMemoryMapper</c>. The region picks the offset; the transport installs each mapping as a KVM
/// memory slot at BAR + offset while the BAR is decoded.
/// </summary>
public interface IHostMemoryMapper
{
    /// <summary>Maps <paramref name="length"/> bytes of <paramref name="fd"/> at <paramref name="fileOffset"/> into the
    /// region. Returns 0 and the page-aligned region offset, or a positive errno (ENOSPC when the region is full, or
    /// mmap's error).</summary>
    int Map(SafeHandle fd, ulong fileOffset, ulong length, bool writable, out ulong regionOffset);

    /// <summary>Removes the mapping made at <paramref name="regionOffset"/>; false when there is none.</summary>
    bool Unmap(ulong regionOffset);
}
