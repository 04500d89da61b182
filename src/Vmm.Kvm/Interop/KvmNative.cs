using System.Runtime.InteropServices;

namespace Vmm.Kvm.Interop;

/// <summary>The libc calls only the KVM layer needs (ioctl, open, signals); mmap, close and the rest are Core's
/// <see cref="Vmm.Core.Interop.Libc"/>. Each sets errno.</summary>
internal static unsafe partial class KvmNative
{
    private const string Lib = "libc";

    public const int O_RDWR = 2, O_CLOEXEC = 0x80000;
    public const int EINTR = 4, EAGAIN = 11, ENOENT = 2, EACCES = 13, EPERM = 1, E2BIG = 7, ESRCH = 3, ENOMEM = 12, ENOSYS = 38;

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, nuint argument);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "gettid")]
    public static partial int GetTid();

    [LibraryImport(Lib, EntryPoint = "tgkill", SetLastError = true)]
    public static partial int TgKill(int tgid, int tid, int signal);

    [LibraryImport(Lib, EntryPoint = "sigaction", SetLastError = true)]
    public static partial int SigAction(int signal, SigActionStruct* action, SigActionStruct* oldAction);

    [LibraryImport(Lib, EntryPoint = "__libc_current_sigrtmin")]
    public static partial int CurrentSigRtMin();

    [LibraryImport(Lib, EntryPoint = "__libc_current_sigrtmax")]
    public static partial int CurrentSigRtMax();

    /// <summary>glibc's x86_64 <c>struct sigaction</c>: handler, 128-byte mask, int flags, restorer (152 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 152)]
    public struct SigActionStruct
    {
        [FieldOffset(0)] public nint Handler;
        [FieldOffset(8)] public fixed ulong Mask[16];
        [FieldOffset(136)] public int Flags;
        [FieldOffset(144)] public nint Restorer;
    }

    public static int LastErrno => Marshal.GetLastPInvokeError();
}
