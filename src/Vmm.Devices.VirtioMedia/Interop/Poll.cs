using System.Runtime.InteropServices;

namespace Vmm.Devices.VirtioMedia.Interop;

/// <summary>poll(2), to sleep on the queue eventfds (Vmm.Core's libc wrapper is internal to Core).</summary>
internal static unsafe partial class Poll
{
    public const short PollIn = 0x001;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Wait(PollFd* fds, nuint count, int timeoutMs);
}
