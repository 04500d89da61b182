using System.Runtime.InteropServices;

namespace Vmm.Core.Interop;

/// <summary>Owns a Linux file descriptor and closes it exactly once. Only a negative value is invalid: 0 is a
/// descriptor like any other (a process started with stdin closed gets it from its first open), as in
/// dotnet/runtime's <c>SafeFileHandle</c> on Unix.</summary>
public sealed class FileDescriptorHandle : SafeHandle
{
    public FileDescriptorHandle() : base(invalidHandleValue: -1, ownsHandle: true) { }

    public FileDescriptorHandle(int fd, bool ownsHandle = true) : base(invalidHandleValue: -1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => (long)handle < 0;

    /// <summary>The raw descriptor, for ioctl/epoll calls made while the handle is kept alive by its owner.</summary>
    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
