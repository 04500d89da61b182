using System.Runtime.InteropServices;
using Vmm.Core.Interop;

namespace Vmm.Kvm.Interop;

/// <summary>Owns a KVM file descriptor (/dev/kvm, a VM or a vCPU) and closes it once. The ioctl helpers keep the
/// handle alive for the duration of the call so a concurrent Dispose cannot close the fd under the kernel. Only a
/// negative value is invalid (0 is a descriptor like any other), as for <see cref="FileDescriptorHandle"/>.</summary>
internal sealed unsafe class KvmFd : SafeHandle
{
    public KvmFd(int fd) : base(invalidHandleValue: -1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => (long)handle < 0;

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;

    /// <summary>ioctl with a pointer argument; throws <see cref="KvmException"/> naming <paramref name="name"/>.</summary>
    public int Ioctl(nuint request, void* argument, string name)
    {
        int result = TryIoctl(request, argument, out int errno);
        if (result < 0)
        {
            throw new KvmException(name, errno);
        }
        return result;
    }

    /// <summary>ioctl with an integer argument; throws <see cref="KvmException"/> naming <paramref name="name"/>.</summary>
    public int Ioctl(nuint request, nuint argument, string name)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            int result = KvmNative.Ioctl((int)handle, request, argument);
            if (result < 0)
            {
                throw KvmException.FromLastError(name);
            }
            return result;
        }
        finally
        {
            DangerousRelease();
        }
    }

    /// <summary>ioctl with a pointer argument that reports errno instead of throwing (KVM_RUN, probing).</summary>
    public int TryIoctl(nuint request, void* argument, out int errno)
    {
        bool added = false;
        DangerousAddRef(ref added);
        try
        {
            int result = KvmNative.Ioctl((int)handle, request, argument);
            errno = result < 0 ? KvmNative.LastErrno : 0;
            return result;
        }
        finally
        {
            DangerousRelease();
        }
    }
}
