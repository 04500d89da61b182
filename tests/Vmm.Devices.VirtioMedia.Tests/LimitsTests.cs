using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Backends.HostV4l2;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The limits a user sets on a virtio-media device (<see cref="MediaDeviceLimits"/>): how each is written in a
/// <c>--media</c> spec, and the exact answer a guest gets when it reaches one.</summary>
public sealed class LimitsTests
{
    private static VirtioMediaTestbed Bed(string spec)
    {
        Assert.True(MediaBackendSpecs.TryParse(spec, out IMediaBackendOptions? options, out string? error), error);
        return VirtioMediaTestbed.Create(options);
    }

    [Fact]
    public void Every_limit_is_a_spec_key_of_every_backend_with_defaults_when_absent()
    {
        Assert.True(MediaBackendSpecs.TryParse("test-pattern", out IMediaBackendOptions? plain, out _));
        Assert.Equal(new MediaDeviceLimits { MaxSessions = 256, MaxBuffersPerQueue = 32, MaxPendingEvents = 4096, MaxCommandBytes = 65536 }, plain.Limits);
        Assert.Equal(1UL << 32, plain.SharedMemorySize);

        Assert.True(MediaBackendSpecs.TryParse("test-pattern,max-sessions=3,max-buffers=4,max-events=32,max-command=8K,shm=16M",
            out IMediaBackendOptions? pattern, out string? error), error);
        Assert.Equal(new MediaDeviceLimits { MaxSessions = 3, MaxBuffersPerQueue = 4, MaxPendingEvents = 32, MaxCommandBytes = 8192 }, pattern.Limits);
        Assert.Equal(16UL << 20, pattern.SharedMemorySize);

        Assert.True(MediaBackendSpecs.TryParse("/dev/video7,max-buffers=2,max-sessions=1", out IMediaBackendOptions? host, out error), error);
        Assert.Equal(new MediaDeviceLimits { MaxSessions = 1, MaxBuffersPerQueue = 2 }, host.Limits);
        Assert.IsType<HostV4l2Options>(host);
    }

    [Theory]
    [InlineData("test-pattern,max-sessions=0", "max-sessions '0' must be a whole number from 1 to 4096")]
    [InlineData("test-pattern,max-sessions=-1", "max-sessions '-1' must be a whole number from 1 to 4096")]
    [InlineData("test-pattern,max-buffers=33", "max-buffers '33' must be a whole number from 1 to 32")]
    [InlineData("test-pattern,max-events=15", "max-events '15' must be a whole number from 16 to 1048576")]
    [InlineData("test-pattern,max-command=4095", "max-command '4095' must be a byte count from 4K to 16M")]
    [InlineData("test-pattern,max-command=17M", "max-command '17M' must be a byte count from 4K to 16M")]
    [InlineData("test-pattern,shm=4097", "shm '4097' must be a non-zero multiple of 4K up to 4G (e.g. 512M)")]
    [InlineData("test-pattern,shm=8G", "shm '8G' must be a non-zero multiple of 4K up to 4G (e.g. 512M)")]
    [InlineData("/dev/video0,max-buffers=many", "max-buffers 'many' must be a whole number from 1 to 32")]
    [InlineData("test-pattern,max-session=2", "unknown key 'max-session' (known: width, height, size, fps, format, api, card, pattern, shm, max-sessions, max-buffers, max-events, max-command)")]
    public void A_bad_limit_is_one_exact_line(string spec, string expected)
    {
        Assert.False(MediaBackendSpecs.TryParse(spec, out _, out string? error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Open_beyond_max_sessions_is_emfile_until_one_closes()
    {
        using VirtioMediaTestbed bed = Bed("test-pattern,max-sessions=2");
        TestbedSession a = bed.OpenSession();
        using TestbedSession b = bed.OpenSession();
        byte[] response = new byte[16];
        Assert.Equal(8, bed.SendCommand([1, 0, 0, 0, 0, 0, 0, 0], response));
        Assert.Equal((uint)Errno.EMFILE, MemoryMarshal.Read<RespHeader>(response).Status);
        a.Dispose();
        using TestbedSession c = bed.OpenSession();
    }

    [Fact]
    public void Reqbufs_grants_at_most_max_buffers_and_create_bufs_on_a_full_queue_is_enobufs()
    {
        using VirtioMediaTestbed bed = Bed("test-pattern,max-buffers=4");
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        var request = new V4l2RequestBuffers { Count = 10, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        Assert.Equal(4u, request.Count);
        var create = new V4l2CreateBuffers { Count = 1, Memory = (uint)V4l2Memory.Mmap, Format = new V4l2Format { Type = 1 } };
        create.Format.Pix.SizeImage = 320 * 240 * 2;
        Assert.Equal(Errno.ENOBUFS, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));

        request = new V4l2RequestBuffers { Count = 1, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        create.Count = 10;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));
        Assert.Equal((1u, 3u), (create.Index, create.Count));
    }

    [Fact]
    public void Reqbufs_grants_the_buffers_that_fit_in_shm_and_enomem_when_none_does()
    {
        // A 320×240 YUYV buffer is 153,600 bytes, 38 pages: 304 KiB holds two.
        using VirtioMediaTestbed bed = Bed("test-pattern,size=320x240,shm=304K");
        using TestbedSession s = bed.OpenSession();
        var request = new V4l2RequestBuffers { Count = 4, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        Assert.Equal(2u, request.Count);
        // Larger frames than the whole region: not even one buffer.
        request = new V4l2RequestBuffers { Count = 0, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        s.SetFormat(FourCc.Rgb24, 640, 480);
        request = new V4l2RequestBuffers { Count = 1, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(Errno.ENOMEM, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
    }

    [Fact]
    public void Pending_events_beyond_max_events_drop_the_oldest()
    {
        using VirtioMediaTestbed bed = Bed("test-pattern,max-events=16");
        Assert.Equal(16, bed.Device.Processor.Events.MaxEvents);
        var watchers = new List<TestbedSession>();
        for (int i = 0; i < 40; i++)
        {
            TestbedSession w = bed.OpenSession();
            Assert.Equal(0, w.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness }));
            watchers.Add(w);
        }
        using TestbedSession setter = bed.OpenSession();
        // One change, 40 subscribers, none reading: the eventq's 16 posted buffers take the first 16 events as they
        // are made, 16 more wait, and the oldest 8 of those are dropped.
        setter.SetControl(V4l2Const.CidBrightness, 200);
        Assert.Equal(8, bed.Device.Processor.Events.DroppedCount);
        Assert.Equal(16, bed.Device.Processor.Events.Count);
        foreach (TestbedSession w in watchers)
        {
            w.Dispose();
        }
    }

    [Fact]
    public void A_command_longer_than_max_command_is_e2big_and_not_acted_on()
    {
        using VirtioMediaTestbed bed = Bed("test-pattern,max-command=4K,max-sessions=1");
        byte[] response = new byte[64];
        // An OPEN padded past the limit: refused whole, so no session opens.
        byte[] open = new byte[4097];
        open[0] = 1;
        Assert.Equal(8, bed.SendCommand(open, response));
        Assert.Equal((uint)Errno.E2BIG, MemoryMarshal.Read<RespHeader>(response).Status);
        Assert.Equal(0, bed.Device.Processor.Sessions.Count);
        // At the limit it is a command like any other.
        Assert.Equal(16, bed.SendCommand(open.AsSpan(0, 4096), response));
        Assert.Equal(0u, MemoryMarshal.Read<RespHeader>(response).Status);
        Assert.Equal(1, bed.Device.Processor.Sessions.Count);
    }
}
