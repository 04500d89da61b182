using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

public class TestbedStreamingTests
{
    internal static VirtioMediaTestbed NewBed(uint fps = 120, uint w = 320, uint h = 240, uint format = FourCc.Yuyv, bool? mplane = null) =>
        VirtioMediaTestbed.Create(new TestPatternOptions { Width = w, Height = h, Fps = fps, Format = format, MultiPlanar = mplane, SharedMemorySize = 256UL << 20 });

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    [Fact]
    public void ConfigSpaceHasCapsTypeAndCard()
    {
        using VirtioMediaTestbed bed = NewBed();
        VirtioMediaConfig c = bed.ReadConfig();
        // One capture API, never both (v4l2-compliance fails QUERYCAP otherwise, and the kernel's ENUM_FMT then
        // refuses the single-planar type).
        Assert.Equal(V4l2Const.CapVideoCapture | V4l2Const.CapStreaming, c.DeviceCaps);
        using (VirtioMediaTestbed mp = NewBed(mplane: true))
        {
            Assert.Equal(V4l2Const.CapVideoCaptureMplane | V4l2Const.CapStreaming, mp.ReadConfig().DeviceCaps);
        }
        using (VirtioMediaTestbed nm12 = NewBed(format: FourCc.Nv12M))
        {
            Assert.Equal(V4l2Const.CapVideoCaptureMplane | V4l2Const.CapStreaming, nm12.ReadConfig().DeviceCaps);
        }
        Assert.Equal(0u, c.DeviceType);
        byte[] raw = new byte[40];
        bed.Device.ReadConfig(0, raw);
        Assert.Equal("Vmm test pattern", V4l2Text.Read(raw.AsSpan(8, 32)));
        Span<byte> past = stackalloc byte[8];
        past.Fill(0xFF);
        bed.Device.ReadConfig(36, past);
        Assert.Equal(new byte[8], past.ToArray());
        Assert.Equal(48, (int)bed.Device.DeviceType);
        Assert.Equal(2, bed.Device.QueueMaxSizes.Length);
        Assert.Single(bed.Device.SharedMemoryRegions);
        Assert.Equal(0, bed.Device.SharedMemoryRegions[0].Id);
    }

    [Theory]
    [InlineData(FourCc.Yuyv, false)]
    [InlineData(FourCc.Nv12, false)]
    [InlineData(FourCc.Yu12, false)]
    [InlineData(FourCc.Rgb24, false)]
    [InlineData(FourCc.Bgr24, false)]
    [InlineData(FourCc.Yuyv, true)]
    [InlineData(FourCc.Nv12, true)]
    [InlineData(FourCc.Yu12, true)]
    [InlineData(FourCc.Nv12M, true)]
    [InlineData(FourCc.Yu12M, true)]
    [InlineData(FourCc.Rgb24, true)]
    public void StreamsFramesWhoseBytesMatchThePattern(uint fourcc, bool mplane)
    {
        using VirtioMediaTestbed bed = NewBed(mplane: mplane);
        using TestbedSession s = bed.OpenSession();
        V4l2Format f = s.SetFormat(fourcc, 352, 288, mplane);
        PixelFormatInfo info = PixelFormats.Find(fourcc)!;
        if (mplane)
        {
            Assert.Equal(info.MemoryPlanes, f.PixMp.NumPlanes);
            Assert.Equal(info.SizeImage(0, 352, 288), f.PixMp.PlaneFmt(0).SizeImage);
        }
        else
        {
            Assert.Equal(info.FrameSize(352, 288), f.Pix.SizeImage);
            Assert.Equal(info.BytesPerLine(0, 352), f.Pix.BytesPerLine);
        }
        Assert.Equal(4, s.RequestBuffers(4, V4l2Memory.Mmap));
        s.QueueAllBuffers();
        s.StreamOn();
        for (uint i = 0; i < 6; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
            Assert.Equal(V4l2Const.BufFlagTimestampMonotonic, frame.Flags & V4l2Const.BufFlagTimestampMonotonic);
            Assert.Equal(0u, frame.Flags & V4l2Const.BufFlagQueued);
            Assert.Equal(V4l2Const.FieldNone, frame.Event.Buffer.Field);
            Assert.Equal(0ul, frame.Event.Buffer.M); // no offsets/pointers in events
            Assert.Equal(TestPatternImage.ExpectedChecksum(fourcc, 352, 288, i, TestPatternControls.Default), frame.Checksum());
            Assert.Equal(i, TestPatternImage.ReadFrameCounter(fourcc, frame.Plane(0), 352));
        }
        s.StreamOff();
    }

    [Fact]
    public void A_buffer_queued_while_the_clock_sleeps_until_an_earlier_frame_does_not_wake_it()
    {
        using VirtioMediaTestbed bed = NewBed(fps: 20);
        using TestbedSession s = StreamPastFirstFrame(bed, buffers: 4);
        long before = bed.Device.Clock.SleepingWakeups;
        // Each frame is re-queued while three buffers wait and the clock sleeps until the next 50-ms tick (or is
        // still awake after sending the frame): the new buffer changes nothing it waits for, so no QBUF may wake a
        // sleeping clock (before, each one did).
        for (uint i = 1; i <= 10; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
        }
        Assert.Equal(before, bed.Device.Clock.SleepingWakeups);
        s.StreamOff();
    }

    [Fact]
    public void A_buffer_queued_while_the_clock_sleeps_with_none_moves_its_timer_instead_of_waking_it()
    {
        using VirtioMediaTestbed bed = NewBed(fps: 5);
        using TestbedSession s = StreamPastFirstFrame(bed, buffers: 1);
        long wakeups = bed.Device.Clock.SleepingWakeups, moves = bed.Device.Clock.TimerMoves;
        // One buffer: after each frame the clock sleeps with nothing to wait for; the buffer comes back well before
        // the next 200-ms tick, so its QBUF moves the timer to that tick (before, each woke the clock, which then
        // armed the timer and slept again). A QBUF delayed past the tick by a loaded machine still wakes it, and one
        // that finds the clock still busy after sending the frame only makes it look again (neither is counted).
        for (uint i = 1; i <= 10; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
        }
        Assert.InRange(bed.Device.Clock.SleepingWakeups - wakeups, 0, 2);
        Assert.InRange(bed.Device.Clock.TimerMoves - moves, 1, 10);
        s.StreamOff();
    }

    [Fact]
    public void FramesArePacedToTheInterval()
    {
        using VirtioMediaTestbed bed = NewBed(fps: 20);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(4, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        var sw = Stopwatch.StartNew();
        s.StreamOn();
        TimeSpan first = default, last = default;
        for (int i = 0; i < 9; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            if (i == 0) { first = frame.Timestamp; }
            last = frame.Timestamp;
        }
        // 8 intervals of 50 ms between first and last frame.
        double ms = (last - first).TotalMilliseconds;
        Assert.InRange(ms, 380, 1500);
        Assert.InRange(sw.ElapsedMilliseconds, 380, 5000);
    }

    [Fact]
    public void FrameRateIsChosenFromTheEnumeratedOnes()
    {
        using VirtioMediaTestbed bed = NewBed(fps: 30);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        Assert.Equal(60u, s.SetFrameRate(59));
        Assert.Equal(1u, s.SetFrameRate(1));
        Assert.Equal(120u, s.SetFrameRate(1000));
    }

    [Fact]
    public void ControlsChangeTheFrames()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12, 320, 240);
        s.SetControl(V4l2Const.CidBrightness, 30);
        s.SetControl(V4l2Const.CidContrast, 90);
        s.SetControl(V4l2Const.CidTestPattern, 1);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        using TestbedFrame frame = s.DequeueFrame(Timeout);
        var controls = new TestPatternControls(30, 90, 1);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Nv12, 320, 240, frame.Sequence, controls), frame.Checksum());
        Assert.NotEqual(TestPatternImage.ExpectedChecksum(FourCc.Nv12, 320, 240, frame.Sequence, TestPatternControls.Default), frame.Checksum());
    }

    [Fact]
    public void ManySessionsAtOnceEachWithItsOwnState()
    {
        using VirtioMediaTestbed bed = NewBed();
        var sessions = new List<TestbedSession>();
        for (int i = 0; i < 8; i++)
        {
            sessions.Add(bed.OpenSession());
        }
        Assert.Equal(8, sessions.Select(x => x.Id).Distinct().Count());
        // The format is the device's: S_FMT on one handle is what G_FMT on another returns (v4l2-compliance's
        // global format check; only mem-to-mem devices keep formats per handle).
        sessions[0].SetFormat(FourCc.Rgb24, 640, 480);
        var g = new V4l2Format { Type = 1 };
        Assert.Equal(0, sessions[1].Ioctl(V4l2IoctlCode.GFmt, ref g));
        Assert.Equal((FourCc.Rgb24, 640u), (g.Pix.PixelFormat, g.Pix.Width));
        sessions[1].SetFormat(FourCc.Nv12, 320, 240);
        g = new V4l2Format { Type = 1 };
        Assert.Equal(0, sessions[0].Ioctl(V4l2IoctlCode.GFmt, ref g));
        Assert.Equal((FourCc.Nv12, 320u), (g.Pix.PixelFormat, g.Pix.Width));
        var parm = new V4l2StreamParm { Type = 1, TimePerFrame = new V4l2Fract(1, 15) };
        Assert.Equal(0, sessions[2].Ioctl(V4l2IoctlCode.SParm, ref parm));
        parm = new V4l2StreamParm { Type = 1 };
        Assert.Equal(0, sessions[3].Ioctl(V4l2IoctlCode.GParm, ref parm));
        Assert.Equal(15u, parm.TimePerFrame.Denominator);
        // Only one session may own buffers (v4l2-compliance expectation); the other gets EBUSY until it is freed.
        Assert.Equal(2, sessions[0].RequestBuffers(2, V4l2Memory.Mmap));
        var r = new V4l2RequestBuffers { Count = 2, Type = 1, Memory = 1 };
        Assert.Equal(Errno.EBUSY, sessions[1].Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        // Nobody may change the format under the owner's buffers.
        var busy = new V4l2Format { Type = 1 };
        busy.Pix.PixelFormat = FourCc.Yuyv;
        busy.Pix.Width = 640;
        busy.Pix.Height = 480;
        Assert.Equal(Errno.EBUSY, sessions[2].Ioctl(V4l2IoctlCode.SFmt, ref busy));
        // REQBUFS(0) from a non-owner is EBUSY too (only the owner frees), and the owner's buffers survive it.
        r = new V4l2RequestBuffers { Count = 0, Type = 1, Memory = 1 };
        Assert.Equal(Errno.EBUSY, sessions[1].Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        var owned = new V4l2Buffer { Index = 1, Type = 1, Memory = 1 };
        Assert.Equal(0, sessions[0].BufferIoctl(V4l2IoctlCode.QueryBuf, ref owned, default, default));
        // CREATE_BUFS(count 0) only checks, so a non-owner may ask; allocating is EBUSY.
        var check = new V4l2CreateBuffers { Count = 0, Memory = 1, Format = new V4l2Format { Type = 1 } };
        Assert.Equal(0, sessions[1].Ioctl(V4l2IoctlCode.CreateBufs, ref check));
        check.Count = 1;
        Assert.Equal(Errno.EBUSY, sessions[1].Ioctl(V4l2IoctlCode.CreateBufs, ref check));
        sessions[0].Dispose();
        Assert.Equal(2, sessions[1].RequestBuffers(2, V4l2Memory.Mmap));
        sessions[1].QueueAllBuffers();
        sessions[1].StreamOn();
        using (TestbedFrame f = sessions[1].DequeueFrame(Timeout))
        {
            Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Nv12, 320, 240, f.Sequence, TestPatternControls.Default), f.Checksum());
        }
        foreach (TestbedSession s in sessions)
        {
            s.Dispose();
        }
        Assert.Equal(0, bed.Device.Processor.Sessions.Count);
        // Closed session: its id is unknown now.
        var e = new V4l2Format { Type = 1 };
        Assert.Equal(Errno.EINVAL, sessions[2].Ioctl(V4l2IoctlCode.GFmt, ref e));
    }

    [Fact]
    public void MappingsOutliveCloseUntilMunmap()
    {
        using VirtioMediaTestbed bed = NewBed();
        TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(3, V4l2Memory.Mmap);
        ulong addr = s.Buffers[0].MappedAddresses[0];
        Assert.Equal(0ul, addr % 4096);
        // The same buffer mapped again gets the same address; a different RW flag is refused.
        Assert.Equal(addr, s.Mmap((uint)addr, writable: false).DriverAddr);
        Assert.Equal(Errno.EINVAL, s.TryMmap((uint)addr, writable: true, out _, out _));
        Assert.Equal(Errno.EINVAL, s.TryMmap(0x7777_0000, writable: false, out _, out _));
        ShmUsage(bed, out ulong before);
        Assert.True(before >= 3 * 320 * 240 * 2);
        bed.Close(s.Id); // close without unmapping
        ShmUsage(bed, out ulong afterClose);
        Assert.True(afterClose > 0, "mapped buffers must stay allocated after CLOSE");
        Assert.Equal(0, s.Munmap(addr));
        Assert.Equal(0, s.Munmap(addr)); // second mapping of the same buffer
        Assert.Equal(Errno.EINVAL, s.Munmap(addr)); // an extra MUNMAP is tolerated with EINVAL
        foreach (TestbedBuffer b in s.Buffers.Skip(1))
        {
            Assert.Equal(0, s.Munmap(b.MappedAddresses[0]));
        }
        ShmUsage(bed, out ulong afterUnmap);
        Assert.Equal(0ul, afterUnmap);
    }

    /// <summary>A session streaming YUYV 320×240 from <paramref name="buffers"/> MMAP buffers, its first frame
    /// dequeued and queued again.</summary>
    private static TestbedSession StreamPastFirstFrame(VirtioMediaTestbed bed, uint buffers)
    {
        TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(buffers, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        using (s.DequeueFrame(Timeout))
        {
        }
        return s;
    }

    private static void ShmUsage(VirtioMediaTestbed bed, out ulong bytes) => bytes = bed.Device.Processor.Shm!.BytesInUse;

    [Fact]
    public void ReqbufsZeroFreesUnmappedBuffersAndStopsEvents()
    {
        using VirtioMediaTestbed bed = NewBed(fps: 120);
        using TestbedSession s = StreamPastFirstFrame(bed, buffers: 4);
        s.StreamOff();
        bed.PumpEvents();
        // No DQBUF event may follow STREAMOFF.
        Thread.Sleep(100);
        Assert.Null(s.WaitEvent(VirtioMediaEventType.Dqbuf, TimeSpan.FromMilliseconds(100)));
        var r = new V4l2RequestBuffers { Count = 0, Type = 1, Memory = 1 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        Assert.Equal(V4l2Const.BufCapSupportsMmap, r.Capabilities & V4l2Const.BufCapSupportsMmap);
        // Still mapped by the testbed's guest: memory stays until MUNMAP.
        Assert.True(bed.Device.Processor.Shm!.BytesInUse > 0);
        foreach (TestbedBuffer b in s.Buffers)
        {
            Assert.Equal(0, s.Munmap(b.MappedAddresses[0]));
        }
        Assert.Equal(0ul, bed.Device.Processor.Shm!.BytesInUse);
    }

    [Fact]
    public void SharedPagesBuffersReceiveFramesInGuestRam()
    {
        using VirtioMediaTestbed bed = NewBed(mplane: true);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12M, 320, 240, multiPlanar: true);
        Assert.Equal(2, s.RequestBuffers(2, V4l2Memory.UserPtr));
        // Plane 0 (76800 bytes) in two physically discontiguous pieces, plane 1 (38400) in one.
        SgEntry[] p0 = [new() { Start = 0x10_0800, Length = 4096 - 0x800 }, new() { Start = 0x30_0000, Length = 76800 - (4096 - 0x800) }];
        SgEntry[] p1 = [new() { Start = 0x50_0000, Length = 38400 }];
        Assert.Equal(0, s.QueueUserBuffer(0, [p0, p1]));
        s.StreamOn();
        TestbedFrame frame = s.DequeueFrame(Timeout);
        frame.Requeue = false;
        byte[] y = new byte[76800], uv = new byte[38400];
        bed.GuestMemory.ReadBytes(new(p0[0].Start), y.AsSpan(0, (int)p0[0].Length));
        bed.GuestMemory.ReadBytes(new(p0[1].Start), y.AsSpan((int)p0[0].Length));
        bed.GuestMemory.ReadBytes(new(p1[0].Start), uv);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Nv12M, 320, 240, 0, TestPatternControls.Default), TestPatternImage.Checksum(y, uv, default));
        Assert.Equal(76800u, frame.Event.Planes[0].BytesUsed);
        Assert.Equal(38400u, frame.Event.Planes[1].BytesUsed);
    }

    [Fact]
    public void FourKSixtyFramesAreCorrect()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 3840, Height = 2160, Fps = 60, Format = FourCc.Nv12, SharedMemorySize = 256UL << 20 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12, 3840, 2160);
        s.RequestBuffers(3, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        for (int i = 0; i < 3; i++)
        {
            using TestbedFrame f = s.DequeueFrame(Timeout);
            Assert.Equal((uint)i, TestPatternImage.ReadFrameCounter(FourCc.Nv12, f.Plane(0), 3840));
            Assert.Equal(3840u * 2160 * 3 / 2, f.BytesUsed(0));
        }
        using TestbedFrame last = s.DequeueFrame(Timeout);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Nv12, 3840, 2160, last.Sequence, TestPatternControls.Default), last.Checksum());
    }

    [Fact]
    public void CloseWhileFramesAreBeingWrittenLeaksNothing()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 1920, Height = 1080, Paced = false, SharedMemorySize = 256UL << 20 });
        for (int round = 0; round < 5; round++)
        {
            TestbedSession s = bed.OpenSession();
            s.SetFormat(FourCc.Yuyv, 1920, 1080);
            s.RequestBuffers(4, V4l2Memory.Mmap);
            s.QueueAllBuffers();
            s.StreamOn();
            using (s.DequeueFrame(Timeout)) { }
            s.Dispose(); // CLOSE while the clock is busy, then MUNMAP of every plane
        }
        long deadline = Environment.TickCount64 + 5000;
        while (bed.Device.Processor.Shm!.BytesInUse != 0 && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(10);
        }
        Assert.Equal(0ul, bed.Device.Processor.Shm!.BytesInUse);
        Assert.Equal(0, bed.Device.Processor.Mappings.Count);
    }
}
