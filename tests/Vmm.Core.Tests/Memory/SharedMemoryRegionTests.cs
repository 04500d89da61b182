using Vmm.Core.Interop;
using Vmm.Core.Memory;
using Vmm.Core.Platform;

namespace Vmm.Core.Tests.Memory;

/// <summary>The host-memory-mapper seam: host file ranges installed as pages of a shared-memory region, and as guest
/// memory slots while the region's BAR window is attached.</summary>
public sealed class SharedMemoryRegionTests
{
    private sealed class RecordingMapper : IGuestMemoryMapper
    {
        public List<(ulong Guest, nint Host, ulong Size)> Live { get; } = [];

        public IDisposable Map(ulong guestPhysicalAddress, nint hostAddress, ulong size)
        {
            var slot = (guestPhysicalAddress, hostAddress, size);
            Live.Add(slot);
            return new Removal(() => Live.Remove(slot));
        }

        private sealed class Removal(Action remove) : IDisposable
        {
            public void Dispose() => remove();
        }
    }

    private static FileDescriptorHandle HostFile(int pages, byte fill)
    {
        int fd = Libc.memfd_create("host-buffer", Libc.MFD_CLOEXEC);
        Assert.True(fd >= 0);
        var handle = new FileDescriptorHandle(fd);
        Assert.Equal(0, Libc.ftruncate(fd, pages * 4096L));
        using var file = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: false), FileAccess.ReadWrite);
        file.Write(Enumerable.Repeat(fill, pages * 4096).ToArray());
        return handle;
    }

    [Fact]
    public void Host_ranges_become_region_pages_and_guest_slots()
    {
        using var region = SharedMemoryRegion.CreateForHostMappings(0, 1UL << 20);
        using FileDescriptorHandle a = HostFile(2, 0xA5), b = HostFile(1, 0x5A);
        var mapper = new RecordingMapper();

        Assert.Equal(0, region.Map(a, 4096, 100, writable: true, out ulong offsetA)); // a partial page rounds up
        using IDisposable window = region.AttachGuestWindow(mapper, 0x8000_0000);
        Assert.Equal([(0x8000_0000 + offsetA, mapper.Live[0].Host, 4096UL)], mapper.Live);
        Assert.Equal(0, region.Map(b, 0, 4096, writable: false, out ulong offsetB));
        Assert.NotEqual(offsetA, offsetB);
        Assert.Equal(2, mapper.Live.Count); // a mapping made while attached gets its slot at once
        Assert.Equal(8192UL, region.HostMappedBytes);

        // The region reads the host file's own pages: what the host writes, the device (and guest) sees.
        Assert.All(region.GetSpan(offsetA, 4096).ToArray(), v => Assert.Equal(0xA5, v));
        Assert.All(region.GetSpan(offsetB, 4096).ToArray(), v => Assert.Equal(0x5A, v));
        Assert.Throws<ArgumentOutOfRangeException>(() => region.GetSpan(offsetA + 4000, 200)); // crosses the end of a mapping
        Assert.Throws<ArgumentOutOfRangeException>(() => region.GetSpan((1UL << 20) - 4096, 4096)); // nothing mapped there

        Assert.True(region.Unmap(offsetA));
        Assert.False(region.Unmap(offsetA));
        Assert.Single(mapper.Live);
        window.Dispose();
        Assert.Empty(mapper.Live);
        Assert.Equal(4096UL, region.HostMappedBytes);
    }

    [Fact]
    public void Bad_ranges_get_an_errno()
    {
        using var region = SharedMemoryRegion.CreateForHostMappings(0, 16384);
        using FileDescriptorHandle a = HostFile(8, 1);
        Assert.Equal(22, region.Map(a, 100, 4096, true, out _)); // EINVAL: file offset not page aligned
        Assert.Equal(22, region.Map(a, 0, 0, true, out _));      // EINVAL: empty
        Assert.Equal(28, region.Map(a, 0, 5 * 4096, true, out _)); // ENOSPC: larger than the region
        Assert.Equal(0, region.Map(a, 0, 4 * 4096, true, out _));
        Assert.Equal(28, region.Map(a, 0, 4096, true, out _));   // ENOSPC: full
        using var backed = new SharedMemoryRegion(0, 4096, "backed");
        Assert.Equal(0UL, backed.HostMappedBytes);
    }

    [Fact]
    public void Page_ranges_are_first_fit_and_freed_ranges_are_reused()
    {
        var ranges = new PageRangeAllocator(5 * 4096);
        Assert.True(ranges.TryAllocate(4096, out ulong a, out _));
        Assert.True(ranges.TryAllocate(8192, out ulong b, out _));
        Assert.True(ranges.TryAllocate(4096, out ulong c, out _));
        Assert.Equal((0UL, 4096UL, 12288UL), (a, b, c));
        ranges.Free(b, 8192);
        Assert.True(ranges.TryAllocate(100, out ulong d, out ulong rounded));
        Assert.Equal((4096UL, 4096UL), (d, rounded));
        Assert.False(ranges.TryAllocate(3 * 4096, out _, out _));
        Assert.Equal(3 * 4096UL, ranges.BytesInUse);
    }
}
