using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Interop;

namespace Vmm.Core.Tests.Interop;

/// <summary>The libc structs every project passes to the kernel, pinned to the kernel's sizes for each architecture.</summary>
public sealed unsafe class LibcLayoutTests
{
    [Fact]
    public void Pollfd_has_the_kernel_size()
    {
        Assert.Equal(8, Unsafe.SizeOf<Libc.PollFd>()); // struct pollfd, the same everywhere
    }

    [Fact]
    public void Epoll_event_is_packed_on_x86_64_and_naturally_aligned_elsewhere()
    {
        // <linux/eventpoll.h>: __EPOLL_PACKED on x86_64 only, so 12 bytes with data at offset 4 there and 16 bytes
        // with data at offset 8 on arm64.
        Assert.Equal(12, Unsafe.SizeOf<Libc.EpollEventPacked>());
        Assert.Equal(4, (int)Marshal.OffsetOf<Libc.EpollEventPacked>(nameof(Libc.EpollEventPacked.Data)));
        Assert.Equal(16, Unsafe.SizeOf<Libc.EpollEventAligned>());
        Assert.Equal(8, (int)Marshal.OffsetOf<Libc.EpollEventAligned>(nameof(Libc.EpollEventAligned.Data)));
        int expected = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;
        Assert.Equal(expected, Libc.EpollEventSize);
        Assert.True(Libc.EpollEventBufferSize(3) >= 3 * Libc.EpollEventSize);
    }

    [Fact]
    public void Epoll_events_round_trip_through_the_kernel_in_this_architecture_s_layout()
    {
        // The kernel writes the array: the second entry lands where this architecture's layout puts it, so a
        // wrong stride would read the first entry's bytes or padding as the second's token.
        int epoll = Libc.epoll_create1(0);
        Assert.True(epoll >= 0);
        using var handle = new FileDescriptorHandle(epoll);
        using var first = new EventFd();
        using var second = new EventFd();
        byte* ev = stackalloc byte[Libc.EpollEventBufferSize(1)];
        Libc.WriteEpollEvent(ev, 0, 1 /* EPOLLIN */, 0x1111_2222_3333_4444UL);
        Assert.Equal(0, Libc.epoll_ctl(epoll, Libc.EPOLL_CTL_ADD, first.Handle.Fd, ev));
        Libc.WriteEpollEvent(ev, 0, 1, 0x5555_6666_7777_8888UL);
        Assert.Equal(0, Libc.epoll_ctl(epoll, Libc.EPOLL_CTL_ADD, second.Handle.Fd, ev));
        first.Signal();
        second.Signal();
        byte* events = stackalloc byte[Libc.EpollEventBufferSize(4)];
        int n = Libc.epoll_wait(epoll, events, 4, 1000);
        Assert.Equal(2, n);
        var tokens = new List<ulong>();
        for (int i = 0; i < n; i++)
        {
            (uint ready, ulong data) = Libc.ReadEpollEvent(events, i);
            Assert.Equal(1u, ready);
            tokens.Add(data);
        }
        tokens.Sort();
        Assert.Equal([0x1111_2222_3333_4444UL, 0x5555_6666_7777_8888UL], tokens);
    }
}
