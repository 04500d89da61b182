using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>
/// One camera, many guest applications: what one session does must not lock out or throttle the others. Regression
/// tests for the findings of the hostile-input fuzzing run (issue 9, FINDINGS 1 and 2).
/// </summary>
public sealed class SharedCameraTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static VirtioMediaTestbed NewBed() =>
        VirtioMediaTestbed.Create(new TestPatternOptions { Width = 640, Height = 480, Fps = 30 });

    [Fact]
    public void A_create_bufs_refused_for_its_plane_size_leaves_the_camera_to_other_sessions()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession a = bed.OpenSession();
        using TestbedSession b = bed.OpenSession();
        a.SetFormat(FourCc.Yuyv, 640, 480);
        var create = new V4l2CreateBuffers { Count = 1, Memory = (uint)V4l2Memory.Mmap, Format = new V4l2Format { Type = 1 } };
        create.Format.Pix.PixelFormat = FourCc.Yuyv;
        create.Format.Pix.Width = 640;
        create.Format.Pix.Height = 480;
        create.Format.Pix.SizeImage = 0x1000_0001; // one byte over the 256 MiB plane cap
        Assert.Equal(Errno.EINVAL, a.Ioctl(V4l2IoctlCode.CreateBufs, ref create));

        // vb2 makes a handle the queue's owner only when its call succeeds: B may allocate, free and set the format.
        var request = new V4l2RequestBuffers { Count = 1, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, b.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        Assert.Equal(1u, request.Count);
        request = new V4l2RequestBuffers { Count = 0, Type = 1, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, b.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        b.SetFormat(FourCc.Yuyv, 320, 240);
    }

    [Fact]
    public void A_session_that_owns_no_buffers_cannot_change_the_frame_rate_of_a_stream()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession owner = bed.OpenSession();
        using TestbedSession other = bed.OpenSession();
        owner.SetFormat(FourCc.Yuyv, 320, 240);
        owner.RequestBuffers(2, V4l2Memory.Mmap);
        owner.QueueAllBuffers();
        owner.StreamOn();

        // As vb2 capture drivers refuse S_FMT from another handle while the queue is busy: EBUSY, rate unchanged.
        var parm = new V4l2StreamParm { Type = 1, TimePerFrame = new V4l2Fract(1, 1) };
        Assert.Equal(Errno.EBUSY, other.Ioctl(V4l2IoctlCode.SParm, ref parm));
        var get = new V4l2StreamParm { Type = 1 };
        Assert.Equal(0, other.Ioctl(V4l2IoctlCode.GParm, ref get));
        Assert.Equal((1u, 30u), (get.TimePerFrame.Numerator, get.TimePerFrame.Denominator));

        // The owner may still change it while streaming, and frames keep coming.
        parm = new V4l2StreamParm { Type = 1, TimePerFrame = new V4l2Fract(1, 15) };
        Assert.Equal(0, owner.Ioctl(V4l2IoctlCode.SParm, ref parm));
        Assert.Equal((1u, 15u), (parm.TimePerFrame.Numerator, parm.TimePerFrame.Denominator));
        using TestbedFrame f = owner.DequeueFrame(Timeout);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, f.Sequence, TestPatternControls.Default), f.Checksum());
    }
}
