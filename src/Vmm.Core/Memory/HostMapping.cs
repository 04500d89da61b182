using System.Runtime.InteropServices;
using Vmm.Core.Interop;

namespace Vmm.Core.Memory;

/// <summary>An mmap'd range of host virtual memory, unmapped exactly once. Guest RAM regions and
/// shared-memory regions are both backed by one.</summary>
public sealed class HostMapping : SafeHandle
{
    private HostMapping(nint address, ulong size) : base(invalidHandleValue: 0, ownsHandle: true)
    {
        SetHandle(address);
        Size = size;
    }

    public ulong Size { get; }

    /// <summary>The host virtual address of the first byte. Valid while this handle is not disposed.</summary>
    public nint Address => handle;

    public override bool IsInvalid => handle == 0 || handle == Libc.MAP_FAILED;

    /// <summary>Private anonymous memory (zero-filled, lazily backed) — guest RAM.</summary>
    public static HostMapping Anonymous(ulong size)
    {
        nint p = Libc.mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if (p == Libc.MAP_FAILED)
        {
            throw ErrnoException.FromLastError($"mmap({size} bytes of guest memory)");
        }
        return new HostMapping(p, size);
    }

    /// <summary>A shared mapping of <paramref name="fd"/> (a memfd), so another mapping of the same file —
    /// a KVM memory slot, another process — sees the same pages.</summary>
    public static HostMapping Shared(FileDescriptorHandle fd, ulong size)
    {
        nint p = Libc.mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_SHARED | Libc.MAP_NORESERVE, fd.Fd, 0);
        if (p == Libc.MAP_FAILED)
        {
            throw ErrnoException.FromLastError($"mmap(shared, {size} bytes)");
        }
        return new HostMapping(p, size);
    }

    /// <summary>Takes ownership of a mapping made elsewhere (e.g. of a host driver's buffer).</summary>
    public static HostMapping Adopt(nint address, ulong size) => new(address, size);

    protected override bool ReleaseHandle() => Libc.munmap(handle, (nuint)Size) == 0;
}
