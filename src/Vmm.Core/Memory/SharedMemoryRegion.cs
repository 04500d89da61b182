using Vmm.Core.Interop;

namespace Vmm.Core.Memory;

/// <summary>
/// A virtio shared-memory region (virtio 1.2 §2.10): memfd-backed host memory that a device writes into and that
/// the transport maps into guest-physical space (a KVM memory slot behind a BAR), so device and guest touch the
/// same pages with no copy. Offsets are region-relative and checked against <see cref="Size"/>.
/// </summary>
public sealed unsafe class SharedMemoryRegion : IDisposable
{
    private readonly FileDescriptorHandle _memfd;
    private readonly HostMapping _mapping;

    public SharedMemoryRegion(byte id, ulong size, string name)
    {
        if (size == 0 || (size & 0xFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "shared memory size must be a non-zero multiple of 4 KiB");
        }
        int fd = Libc.memfd_create(name, Libc.MFD_CLOEXEC);
        if (fd < 0)
        {
            throw ErrnoException.FromLastError("memfd_create");
        }
        _memfd = new FileDescriptorHandle(fd);
        if (Libc.ftruncate(fd, (long)size) != 0)
        {
            var e = ErrnoException.FromLastError("ftruncate(memfd)");
            _memfd.Dispose();
            throw e;
        }
        _mapping = HostMapping.Shared(_memfd, size);
        Id = id;
        Size = size;
    }

    /// <summary>The shmid the device and driver agree on (virtio-media uses 0 for MMAP buffers).</summary>
    public byte Id { get; }
    public ulong Size { get; }

    /// <summary>Host address of offset 0, for installing the region as a KVM memory slot.</summary>
    public nint HostAddress => _mapping.Address;

    /// <summary>The memfd, so the region could be mapped again elsewhere.</summary>
    public FileDescriptorHandle FileDescriptor => _memfd;

    public bool Contains(ulong offset, ulong length) => offset <= Size && length <= Size - offset;

    /// <summary>A span over [offset, offset+length) of the region.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        if (length < 0 || !Contains(offset, (ulong)length))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"shared memory range 0x{offset:x}+0x{length:x} outside region of 0x{Size:x}");
        }
        // Safe: the range was just checked against the live mapping's size.
        return new Span<byte>((byte*)_mapping.Address + offset, length);
    }

    public void Dispose()
    {
        _mapping.Dispose();
        _memfd.Dispose();
    }
}
