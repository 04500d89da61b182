using System.Runtime.InteropServices;
using Vmm.Core.Interop;
using Vmm.Core.Platform;

namespace Vmm.Core.Memory;

/// <summary>
/// A virtio shared-memory region (virtio 1.2 §2.10): host memory that a device and the guest address at the same
/// region offsets, with no copy. Two kinds:
/// <list type="bullet">
/// <item>memfd-backed (<see cref="SharedMemoryRegion(byte, ulong, string)"/>): one host mapping of the whole
/// region, installed as one KVM memory slot behind the BAR. The device writes into it.</item>
/// <item>host-mapped (<see cref="CreateForHostMappings"/>): an address space only, filled by
/// <see cref="IHostMemoryMapper.Map"/> with ranges of host files (a host driver's buffers), each installed as its
/// own memory slot at BAR + offset. Unmapped parts of the BAR read as MMIO holes.</item>
/// </list>
/// Offsets are region-relative and checked against <see cref="Size"/>. Thread-safe.
/// </summary>
public sealed unsafe class SharedMemoryRegion : IHostMemoryMapper, IDisposable
{
    private readonly FileDescriptorHandle? _memfd;
    private readonly HostMapping? _mapping;
    private readonly PageRangeAllocator? _ranges;
    private readonly Lock _lock = new();
    // Host-mapped kind: live mappings by region offset, and their guest slots while a window is attached.
    private readonly SortedList<ulong, HostRange> _hostRanges = [];
    private IGuestMemoryMapper? _windowMapper;
    private ulong _windowAddress;
    private bool _disposed;

    private sealed class HostRange(HostMapping mapping, ulong length)
    {
        public HostMapping Mapping { get; } = mapping;
        public ulong Length { get; } = length;
        public IDisposable? Slot { get; set; }
    }

    /// <summary>A memfd-backed region of <paramref name="size"/> bytes.</summary>
    public SharedMemoryRegion(byte id, ulong size, string name)
    {
        CheckSize(size);
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

    private SharedMemoryRegion(byte id, ulong size)
    {
        CheckSize(size);
        Id = id;
        Size = size;
        _ranges = new PageRangeAllocator(size);
    }

    /// <summary>A region of <paramref name="size"/> bytes of address space, filled by host mappings.</summary>
    public static SharedMemoryRegion CreateForHostMappings(byte id, ulong size) => new(id, size);

    private static void CheckSize(ulong size)
    {
        if (size == 0 || (size & 0xFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "shared memory size must be a non-zero multiple of 4 KiB");
        }
    }

    /// <summary>The shmid the device and driver agree on (virtio-media uses 0 for MMAP buffers).</summary>
    public byte Id { get; }
    public ulong Size { get; }

    /// <summary>True for the memfd-backed kind.</summary>
    public bool IsBacked => _mapping is not null;

    /// <summary>Host address of offset 0 (memfd-backed kind only).</summary>
    public nint HostAddress => _mapping?.Address ?? throw new InvalidOperationException("a host-mapped region has no single host address");

    /// <summary>The memfd (memfd-backed kind only), so the region could be mapped again elsewhere.</summary>
    public FileDescriptorHandle FileDescriptor => _memfd ?? throw new InvalidOperationException("a host-mapped region has no memfd");

    /// <summary>Bytes of host mappings currently installed (host-mapped kind).</summary>
    public ulong HostMappedBytes => _ranges?.BytesInUse ?? 0;

    public bool Contains(ulong offset, ulong length) => offset <= Size && length <= Size - offset;

    /// <summary>A span over [offset, offset+length) of the region. For the host-mapped kind the range must lie inside
    /// one host mapping.</summary>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        if (length < 0 || !Contains(offset, (ulong)length))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"shared memory range 0x{offset:x}+0x{length:x} outside region of 0x{Size:x}");
        }
        if (_mapping is not null)
        {
            // Safe: the range was just checked against the live mapping's size.
            return new Span<byte>((byte*)_mapping.Address + offset, length);
        }
        lock (_lock)
        {
            IList<ulong> keys = _hostRanges.Keys;
            for (int i = keys.Count - 1; i >= 0; i--)
            {
                if (keys[i] > offset)
                {
                    continue;
                }
                HostRange r = _hostRanges.Values[i];
                if (offset - keys[i] + (ulong)length <= r.Length)
                {
                    // Safe: the range lies inside this live host mapping (checked just above). The caller holds a
                    // reference on the buffer that owns the mapping, so it is not unmapped while the span is used.
                    return new Span<byte>((byte*)r.Mapping.Address + (offset - keys[i]), length);
                }
                break;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(offset), $"shared memory range 0x{offset:x}+0x{length:x} is not mapped");
    }

    public int Map(SafeHandle fd, ulong fileOffset, ulong length, bool writable, out ulong regionOffset)
    {
        regionOffset = 0;
        if (_ranges is null)
        {
            throw new InvalidOperationException("a memfd-backed region takes no host mappings");
        }
        if (length == 0 || (fileOffset & (PageRangeAllocator.PageSize - 1)) != 0 || fileOffset > long.MaxValue)
        {
            return 22; // EINVAL
        }
        if (!_ranges.TryAllocate(length, out ulong offset, out ulong rounded))
        {
            return 28; // ENOSPC
        }
        bool added = false;
        fd.DangerousAddRef(ref added);
        nint p;
        try
        {
            // MAP_SHARED: the host driver's pages themselves, not a private copy.
            p = Libc.mmap(0, (nuint)rounded, Libc.PROT_READ | (writable ? Libc.PROT_WRITE : 0), Libc.MAP_SHARED,
                (int)fd.DangerousGetHandle(), (long)fileOffset);
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
        if (p == Libc.MAP_FAILED)
        {
            int errno = Libc.LastErrno;
            _ranges.Free(offset, rounded);
            return errno;
        }
        var range = new HostRange(HostMapping.Adopt(p, rounded), rounded);
        lock (_lock)
        {
            if (_disposed)
            {
                range.Mapping.Dispose();
                _ranges.Free(offset, rounded);
                return 19; // ENODEV
            }
            _hostRanges.Add(offset, range);
            if (_windowMapper is not null)
            {
                try
                {
                    range.Slot = _windowMapper.Map(_windowAddress + offset, range.Mapping.Address, rounded);
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or ErrnoException)
                {
                    _hostRanges.Remove(offset);
                    range.Mapping.Dispose();
                    _ranges.Free(offset, rounded);
                    return 12; // ENOMEM: no memory slot left
                }
            }
        }
        regionOffset = offset;
        return 0;
    }

    public bool Unmap(ulong regionOffset)
    {
        HostRange? range;
        lock (_lock)
        {
            if (!_hostRanges.Remove(regionOffset, out range))
            {
                return false;
            }
            // The guest slot goes first, so the guest never reaches pages that are about to be unmapped.
            range.Slot?.Dispose();
        }
        range.Mapping.Dispose();
        _ranges!.Free(regionOffset, range.Length);
        return true;
    }

    /// <summary>Installs the region at <paramref name="guestAddress"/> (the BAR address) through
    /// <paramref name="mapper"/>; the returned handle removes it (BAR moved, decoding off, VM stops).</summary>
    public IDisposable AttachGuestWindow(IGuestMemoryMapper mapper, ulong guestAddress)
    {
        if (_mapping is not null)
        {
            return mapper.Map(guestAddress, _mapping.Address, Size);
        }
        lock (_lock)
        {
            if (_windowMapper is not null)
            {
                throw new InvalidOperationException("the region is already installed in guest memory");
            }
            _windowMapper = mapper;
            _windowAddress = guestAddress;
            try
            {
                foreach (KeyValuePair<ulong, HostRange> r in _hostRanges)
                {
                    r.Value.Slot = mapper.Map(guestAddress + r.Key, r.Value.Mapping.Address, r.Value.Length);
                }
            }
            catch
            {
                DetachGuestWindow();
                throw;
            }
        }
        return new Window(this);
    }

    private void DetachGuestWindow()
    {
        lock (_lock)
        {
            foreach (HostRange r in _hostRanges.Values)
            {
                r.Slot?.Dispose();
                r.Slot = null;
            }
            _windowMapper = null;
        }
    }

    private sealed class Window(SharedMemoryRegion region) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                region.DetachGuestWindow();
            }
        }
    }

    public void Dispose()
    {
        _mapping?.Dispose();
        _memfd?.Dispose();
        List<HostRange> left;
        lock (_lock)
        {
            _disposed = true;
            left = [.. _hostRanges.Values];
            foreach (HostRange r in left)
            {
                r.Slot?.Dispose();
            }
            _hostRanges.Clear();
        }
        foreach (HostRange r in left)
        {
            r.Mapping.Dispose();
        }
    }
}
