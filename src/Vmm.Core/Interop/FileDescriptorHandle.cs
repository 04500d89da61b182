using Microsoft.Win32.SafeHandles;

namespace Vmm.Core.Interop;

/// <summary>Owns a Linux file descriptor and closes it exactly once.</summary>
public sealed class FileDescriptorHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public FileDescriptorHandle() : base(ownsHandle: true) { }

    public FileDescriptorHandle(int fd, bool ownsHandle = true) : base(ownsHandle) => SetHandle(fd);

    /// <summary>The raw descriptor, for ioctl/epoll calls made while the handle is kept alive by its owner.</summary>
    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
