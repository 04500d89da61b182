namespace Vmm.Devices.VirtioMedia.Protocol;

/// <summary>Linux errno values (x86/arm generic numbering). The device answers with these as positive numbers,
/// whatever the host OS, because the guest driver negates them and hands them to Linux applications.</summary>
public static class Errno
{
    public const int Ok = 0;
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EFAULT = 14;
    public const int EBUSY = 16;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int E2BIG = 7;
    public const int EMFILE = 24;
    public const int ENOTTY = 25;
    public const int ENOSPC = 28;
    public const int ENOBUFS = 105;
    public const int EPIPE = 32;
    public const int ERANGE = 34;
    public const int ENODATA = 61;
    public const int ETIMEDOUT = 110;
}
