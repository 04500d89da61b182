using System.Runtime.InteropServices;

namespace Vmm.Core.Interop;

/// <summary>The libc calls the VMM needs, one LibraryImport each, shared by every project of ours (the interop edge:
/// callers keep fds alive with their SafeHandles). Every call sets errno, read with
/// <see cref="Marshal.GetLastPInvokeError"/>.</summary>
public static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
    public const int MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
    public const int MADV_DONTDUMP = 16, MADV_MERGEABLE = 12, MADV_HUGEPAGE = 14;
    public const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2;
    public const int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010;
    public const int EINTR = 4, EAGAIN = 11;
    public const short POLLIN = 0x1, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
    public static readonly nint MAP_FAILED = -1;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int mprotect(nint addr, nuint length, int prot);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int madvise(nint addr, nuint length, int advice);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int memfd_create(string name, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint read(int fd, void* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint write(int fd, void* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_create1(int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int timerfd_create(int clockId, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int timerfd_settime(int fd, int flags, ITimerSpec* newValue, ITimerSpec* oldValue);

    /// <summary>struct itimerspec (32 bytes on 64-bit Linux): interval, then first expiry.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ITimerSpec
    {
        public long IntervalSec;
        public long IntervalNsec;
        public long ValueSec;
        public long ValueNsec;
    }

    /// <summary>struct pollfd (8 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }

    /// <summary>struct epoll_event as the kernel lays it out on x86_64, where the UAPI header declares it packed
    /// (<c>__EPOLL_PACKED</c>): 12 bytes, data at offset 4.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    public struct EpollEventPacked
    {
        public uint Events;
        public ulong Data;
    }

    /// <summary>struct epoll_event on every other architecture (arm64 among them): natural alignment, 16 bytes,
    /// data at offset 8.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct EpollEventAligned
    {
        public uint Events;
        public ulong Data;
    }

    /// <summary>Whether this process's struct epoll_event is the packed x86_64 one.</summary>
    public static readonly bool EpollEventIsPacked = RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>sizeof(struct epoll_event) for this process's architecture.</summary>
    public static int EpollEventSize => EpollEventIsPacked ? sizeof(EpollEventPacked) : sizeof(EpollEventAligned);

    /// <summary>Bytes for <paramref name="count"/> epoll events on any architecture (the larger layout).</summary>
    public static int EpollEventBufferSize(int count) => count * sizeof(EpollEventAligned);

    /// <summary>Writes event <paramref name="index"/> of an epoll_event array at <paramref name="events"/>.</summary>
    public static void WriteEpollEvent(byte* events, int index, uint ready, ulong data)
    {
        // Safe: callers pass a buffer of at least EpollEventBufferSize(index + 1) bytes.
        if (EpollEventIsPacked)
        {
            ((EpollEventPacked*)events)[index] = new EpollEventPacked { Events = ready, Data = data };
        }
        else
        {
            ((EpollEventAligned*)events)[index] = new EpollEventAligned { Events = ready, Data = data };
        }
    }

    /// <summary>Reads event <paramref name="index"/> of an epoll_event array the kernel filled.</summary>
    public static (uint Events, ulong Data) ReadEpollEvent(byte* events, int index)
    {
        // Safe: index is below the count epoll_wait returned, which is at most the buffer's capacity.
        if (EpollEventIsPacked)
        {
            EpollEventPacked e = ((EpollEventPacked*)events)[index];
            return (e.Events, e.Data);
        }
        EpollEventAligned a = ((EpollEventAligned*)events)[index];
        return (a.Events, a.Data);
    }

    public static int LastErrno => Marshal.GetLastPInvokeError();

    public static string ErrnoMessage(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
