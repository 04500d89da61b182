using System.Runtime.CompilerServices;
using Vmm.Core.Interop;

namespace Vmm.Core.Tests.Interop;

/// <summary>The libc structs every project passes to the kernel, pinned to their x86_64 sizes.</summary>
public sealed class LibcLayoutTests
{
    [Fact]
    public void Pollfd_and_epoll_event_have_the_kernel_sizes()
    {
        Assert.Equal(8, Unsafe.SizeOf<Libc.PollFd>());      // struct pollfd
        Assert.Equal(12, Unsafe.SizeOf<Libc.EpollEvent>()); // struct epoll_event, packed on x86_64
    }
}
