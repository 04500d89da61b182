using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>Each ioctl a capture device needs, through the testbed's wire-level calls.</summary>
public class IoctlTests
{
    private static VirtioMediaTestbed NewBed(bool? mplane = null) => TestbedStreamingTests.NewBed(fps: 30, w: 1000, h: 562, mplane: mplane);

    [Fact]
    public void EnumFmtListsContiguousFormatsOnSinglePlanarAndAllOnMultiPlanar()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        using VirtioMediaTestbed mpBed = NewBed(mplane: true);
        using TestbedSession m = mpBed.OpenSession();
        List<uint> Enum(uint type, TestbedSession s)
        {
            var list = new List<uint>();
            for (uint i = 0; ; i++)
            {
                var d = new V4l2FmtDesc { Index = i, Type = type };
                int status = s.Ioctl(V4l2IoctlCode.EnumFmt, ref d);
                if (status != 0)
                {
                    Assert.Equal(Errno.EINVAL, status);
                    return list;
                }
                Assert.Equal(i, d.Index);
                list.Add(d.PixelFormat);
            }
        }
        Assert.Equal([FourCc.Yuyv, FourCc.Nv12, FourCc.Yu12, FourCc.Rgb24, FourCc.Bgr24], Enum(1, s));
        Assert.Empty(Enum(9, s)); // the single-planar device has no multi-planar type
        Assert.Equal([FourCc.Yuyv, FourCc.Nv12, FourCc.Yu12, FourCc.Rgb24, FourCc.Bgr24, FourCc.Nv12M, FourCc.Yu12M], Enum(9, m));
        Assert.Empty(Enum(1, m));
        Assert.Empty(Enum(2, s)); // output type: EINVAL at index 0

        // Every format G/S/TRY_FMT return is one ENUM_FMT lists for that type (v4l2-compliance checks this).
        foreach ((TestbedSession session, uint type, List<uint> listed) in new[] { (s, 1u, Enum(1, s)), (m, 9u, Enum(9, m)) })
        {
            foreach (uint fourcc in new[] { FourCc.Yuyv, FourCc.Nv12M, FourCc.Make('M', 'J', 'P', 'G') })
            {
                var f = new V4l2Format { Type = type };
                f.Pix.PixelFormat = fourcc; // pixelformat is at the same offset in pix and pix_mp
                Assert.Equal(0, session.Ioctl(V4l2IoctlCode.TryFmt, ref f));
                Assert.Contains(f.Pix.PixelFormat, listed);
                Assert.Equal(0, session.Ioctl(V4l2IoctlCode.SFmt, ref f));
                Assert.Contains(f.Pix.PixelFormat, listed);
                var g = new V4l2Format { Type = type };
                Assert.Equal(0, session.Ioctl(V4l2IoctlCode.GFmt, ref g));
                Assert.Contains(g.Pix.PixelFormat, listed);
            }
        }
        var other = new V4l2Format { Type = 9 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GFmt, ref other));
        other = new V4l2Format { Type = 1 };
        Assert.Equal(Errno.EINVAL, m.Ioctl(V4l2IoctlCode.GFmt, ref other));
        // Frame sizes only for formats this API offers.
        var nm12Sizes = new V4l2FrmSizeEnum { Index = 0, PixelFormat = FourCc.Nv12M };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.EnumFrameSizes, ref nm12Sizes));
        nm12Sizes = new V4l2FrmSizeEnum { Index = 0, PixelFormat = FourCc.Nv12M };
        Assert.Equal(0, m.Ioctl(V4l2IoctlCode.EnumFrameSizes, ref nm12Sizes));
    }

    [Fact]
    public void FrameSizesIncludeCommonAndConfiguredSizesAndIntervalsAreDiscrete()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        var sizes = new List<(uint, uint)>();
        for (uint i = 0; ; i++)
        {
            var e = new V4l2FrmSizeEnum { Index = i, PixelFormat = FourCc.Nv12 };
            if (s.Ioctl(V4l2IoctlCode.EnumFrameSizes, ref e) != 0) { break; }
            Assert.Equal(V4l2Const.FrmSizeTypeDiscrete, e.Type);
            sizes.Add((e.Width, e.Height));
        }
        Assert.Contains((160u, 120u), sizes);
        Assert.Contains((3840u, 2160u), sizes);
        Assert.Contains((1920u, 1080u), sizes);
        Assert.Contains((1000u, 562u), sizes); // the configured one
        var bad = new V4l2FrmSizeEnum { Index = 0, PixelFormat = FourCc.Make('M', 'J', 'P', 'G') };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.EnumFrameSizes, ref bad));

        var rates = new List<uint>();
        for (uint i = 0; ; i++)
        {
            var e = new V4l2FrmIvalEnum { Index = i, PixelFormat = FourCc.Nv12, Width = 1280, Height = 720 };
            if (s.Ioctl(V4l2IoctlCode.EnumFrameIntervals, ref e) != 0) { break; }
            Assert.Equal(1u, e.Discrete.Numerator);
            rates.Add(e.Discrete.Denominator);
        }
        Assert.Equal(120u, rates[0]);
        Assert.Contains(1u, rates);
        var odd = new V4l2FrmIvalEnum { Index = 0, PixelFormat = FourCc.Nv12, Width = 1281, Height = 720 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.EnumFrameIntervals, ref odd));
    }

    [Fact]
    public void TryFmtAdjustsAndSFmtIsBusyWhileBuffersExist()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        var f = new V4l2Format { Type = 1 };
        f.Pix.PixelFormat = FourCc.Make('M', 'J', 'P', 'G');
        f.Pix.Width = 1279;
        f.Pix.Height = 719;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.TryFmt, ref f));
        Assert.Equal((FourCc.Yuyv, 1280u, 720u, V4l2Const.FieldNone), (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height, f.Pix.Field));
        Assert.Equal(1280u * 2, f.Pix.BytesPerLine);
        // NM12 is multi-planar only; on the single-planar API it is replaced.
        var mp = new V4l2Format { Type = 1 };
        mp.Pix.PixelFormat = FourCc.Nv12M;
        mp.Pix.Width = 640;
        mp.Pix.Height = 480;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.TryFmt, ref mp));
        Assert.Equal(FourCc.Yuyv, mp.Pix.PixelFormat);
        // TRY does not change the current format.
        var g = new V4l2Format { Type = 1 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GFmt, ref g));
        Assert.Equal(1000u, g.Pix.Width);
        s.SetFormat(FourCc.Yu12, 640, 480);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        var again = new V4l2Format { Type = 1 };
        again.Pix.PixelFormat = FourCc.Yuyv;
        Assert.Equal(Errno.EBUSY, s.Ioctl(V4l2IoctlCode.SFmt, ref again));
        var wrongType = new V4l2Format { Type = 2 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GFmt, ref wrongType));
    }

    [Fact]
    public void ParmInputsAndSelection()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        var p = new V4l2StreamParm { Type = 1 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GParm, ref p));
        Assert.Equal((V4l2Const.CapTimePerFrame, 1u, 30u), (p.Capability, p.TimePerFrame.Numerator, p.TimePerFrame.Denominator));
        p = new V4l2StreamParm { Type = 1, TimePerFrame = new V4l2Fract(1001, 24000) };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SParm, ref p));
        Assert.Equal(24u, p.TimePerFrame.Denominator);

        var input = new V4l2Input { Index = 0 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.EnumInput, ref input));
        Assert.Equal(V4l2Const.InputTypeCamera, input.Type);
        unsafe
        {
            Assert.Equal("Test Pattern", V4l2Text.Read(new ReadOnlySpan<byte>(input.Name, 32)));
        }
        input = new V4l2Input { Index = 1 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.EnumInput, ref input));
        uint current = 77; // the driver sends 4 (ignored) input bytes for G_INPUT
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GInput, ref current));
        Assert.Equal(0u, current);
        uint one = 1, zero = 0;
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.SInput, ref one));
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SInput, ref zero));

        var sel = new V4l2Selection { Type = 1, Target = V4l2Const.SelTgtCropBounds };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GSelection, ref sel));
        Assert.Equal((1000u, 562u), (sel.Rect.Width, sel.Rect.Height));
        sel = new V4l2Selection { Type = 1, Target = V4l2Const.SelTgtCrop, Rect = new V4l2Rect { Left = 5, Width = 10, Height = 10 } };
        // No S_SELECTION: with several discrete frame sizes V4L2 (and v4l2-compliance) forbids it.
        Assert.Equal(Errno.ENOTTY, s.Ioctl(V4l2IoctlCode.SSelection, ref sel));
        sel = new V4l2Selection { Type = 1, Target = V4l2Const.SelTgtCompose };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GSelection, ref sel));
    }

    [Fact]
    public void ControlEnumerationQueryMenuAndGetSet()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        var ids = new List<uint>();
        uint id = V4l2Const.CtrlFlagNextCtrl;
        while (true)
        {
            var q = new V4l2QueryExtCtrl { Id = id };
            if (s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref q) != 0) { break; }
            ids.Add(q.Id);
            id = q.Id | V4l2Const.CtrlFlagNextCtrl;
        }
        Assert.Equal([0x00980001u, V4l2Const.CidBrightness, V4l2Const.CidContrast, 0x009F0001u, V4l2Const.CidTestPattern], ids);
        var qc = new V4l2QueryCtrl { Id = V4l2Const.CidContrast };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.QueryCtrl, ref qc));
        Assert.Equal((0, 255, 128), (qc.Minimum, qc.Maximum, qc.DefaultValue));
        var compound = new V4l2QueryExtCtrl { Id = V4l2Const.CtrlFlagNextCompound };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref compound));

        var menu = new V4l2QueryMenu { Id = V4l2Const.CidTestPattern, Index = 2 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.QueryMenu, ref menu));
        unsafe
        {
            Assert.Equal("Solid Grey", V4l2Text.Read(new ReadOnlySpan<byte>(menu.Name, 32)));
        }
        menu = new V4l2QueryMenu { Id = V4l2Const.CidTestPattern, Index = 3 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QueryMenu, ref menu));

        var c = new V4l2Control { Id = V4l2Const.CidBrightness, Value = 1000 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SCtrl, ref c));
        Assert.Equal(127, c.Value); // clamped
        c = new V4l2Control { Id = V4l2Const.CidBrightness };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GCtrl, ref c));
        Assert.Equal(127, c.Value);
        // A menu index outside min…max is ERANGE (the kernel's answer; v4l2-compliance tries minimum - 1).
        c = new V4l2Control { Id = V4l2Const.CidTestPattern, Value = 9 };
        Assert.Equal(Errno.ERANGE, s.Ioctl(V4l2IoctlCode.SCtrl, ref c));
        c = new V4l2Control { Id = V4l2Const.CidTestPattern, Value = -1 };
        Assert.Equal(Errno.ERANGE, s.Ioctl(V4l2IoctlCode.SCtrl, ref c));
        c = new V4l2Control { Id = 0x00980001 };
        Assert.Equal(Errno.EACCES, s.Ioctl(V4l2IoctlCode.GCtrl, ref c));
        c = new V4l2Control { Id = 0x12345 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GCtrl, ref c));
    }

    private static byte[] ExtControls(uint which, ulong pointer, params (uint Id, int Value)[] controls)
    {
        byte[] payload = new byte[32 + 20 * controls.Length];
        MemoryMarshal.Write(payload, new V4l2ExtControls { Which = which, Count = (uint)controls.Length, Controls = pointer });
        for (int i = 0; i < controls.Length; i++)
        {
            MemoryMarshal.Write(payload.AsSpan(32 + 20 * i), new V4l2ExtControl { Id = controls[i].Id, Value = controls[i].Value });
        }
        return payload;
    }

    [Fact]
    public void ExtControlsGetSetTryAndErrorIndex()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        const ulong guestPointer = 0xFFFF_8880_1234_5000;
        byte[] output = new byte[32 + 40];
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SExtCtrls, ExtControls(0, guestPointer, (V4l2Const.CidContrast, 40), (V4l2Const.CidTestPattern, 2)), output, out int written));
        Assert.Equal(72, written);
        Assert.Equal(guestPointer, MemoryMarshal.Read<V4l2ExtControls>(output).Controls); // pointer back unchanged
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GExtCtrls, ExtControls(V4l2Const.CtrlClassUser, guestPointer, (V4l2Const.CidContrast, 0), (V4l2Const.CidBrightness, 5)), output, out _));
        Assert.Equal(40, MemoryMarshal.Read<V4l2ExtControl>(output.AsSpan(32)).Value);
        Assert.Equal(0, MemoryMarshal.Read<V4l2ExtControl>(output.AsSpan(52)).Value);
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GExtCtrls, ExtControls(V4l2Const.CtrlWhichDefVal, 0, (V4l2Const.CidContrast, 0)), output.AsSpan(0, 52), out _));
        Assert.Equal(128, MemoryMarshal.Read<V4l2ExtControl>(output.AsSpan(32)).Value);

        // TRY with a bad menu value: error_idx names the control, and the payload comes back with the error.
        Assert.Equal(Errno.ERANGE, s.Ioctl(V4l2IoctlCode.TryExtCtrls, ExtControls(0, 0, (V4l2Const.CidBrightness, 1), (V4l2Const.CidTestPattern, 7)), output, out written));
        Assert.Equal(72, written);
        Assert.Equal(1u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        // S with an unknown id: nothing is applied, error_idx = count.
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.SExtCtrls, ExtControls(0, 0, (V4l2Const.CidContrast, 99), (0xABCDEF, 1)), output, out _));
        Assert.Equal(2u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        var c = new V4l2Control { Id = V4l2Const.CidContrast };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GCtrl, ref c));
        Assert.Equal(40, c.Value);
        // A control of another class than `which`.
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GExtCtrls, ExtControls(V4l2Const.CtrlClassUser, 0, (V4l2Const.CidTestPattern, 0)), output.AsSpan(0, 52), out _));
        // G of a class control (write-only): EACCES with error_idx = count; G of an unknown id: error_idx = count.
        Assert.Equal(Errno.EACCES, s.Ioctl(V4l2IoctlCode.GExtCtrls, ExtControls(0, 0, (0x00980001u, 0)), output.AsSpan(0, 52), out _));
        Assert.Equal(1u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GExtCtrls, ExtControls(0, 0, (V4l2Const.CidContrast, 0), (0, 0)), output, out _));
        Assert.Equal(2u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        // TRY/S of a class control (read-only): EACCES; TRY names index 0, S answers count.
        Assert.Equal(Errno.EACCES, s.Ioctl(V4l2IoctlCode.TryExtCtrls, ExtControls(0, 0, (0x00980001u, 0)), output.AsSpan(0, 52), out _));
        Assert.Equal(0u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        Assert.Equal(Errno.EACCES, s.Ioctl(V4l2IoctlCode.SExtCtrls, ExtControls(0, 0, (0x00980001u, 0)), output.AsSpan(0, 52), out _));
        Assert.Equal(1u, MemoryMarshal.Read<V4l2ExtControls>(output).ErrorIdx);
        // Requests are not supported.
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.SExtCtrls, ExtControls(V4l2Const.CtrlWhichRequestVal, 0, (V4l2Const.CidContrast, 1)), output.AsSpan(0, 52), out _));
    }

    [Fact]
    public void SubscribeWithInitialEventDeliversItBeforeTheAnswerAndChangesNotifyOthers()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession a = bed.OpenSession();
        using TestbedSession b = bed.OpenSession();
        var sub = new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness, Flags = V4l2Const.EventSubFlSendInitial };
        Assert.Equal(0, a.IoctlWrite(V4l2IoctlCode.SubscribeEvent, sub));
        // Already in the eventq's used ring when the command returned (the driver drains the eventq right after
        // SUBSCRIBE): reaping it needs no waiting.
        Assert.Equal(1, bed.PumpEvents());
        byte[] initial = a.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromSeconds(1))!;
        Assert.Equal(VirtioMediaWire.EventEventSize, initial.Length);
        EventEvent ev = MemoryMarshal.Read<EventEvent>(initial);
        Assert.Equal((V4l2Const.EventCtrl, V4l2Const.CidBrightness, 0), (ev.Event.Type, ev.Event.Id, ev.Event.CtrlValue));
        Assert.Equal(a.Id, ev.Header.SessionId);

        b.SetControl(V4l2Const.CidBrightness, -20);
        byte[] change = a.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromSeconds(1))!;
        ev = MemoryMarshal.Read<EventEvent>(change);
        Assert.Equal(-20, ev.Event.CtrlValue);
        Assert.Equal(V4l2Const.EventCtrlChValue, ev.Event.CtrlChanges);
        Assert.Null(b.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromMilliseconds(50))); // b is not subscribed

        // The setter itself gets no event without ALLOW_FEEDBACK; after UNSUBSCRIBE(all) nobody does.
        a.SetControl(V4l2Const.CidBrightness, 3);
        Assert.Null(a.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromMilliseconds(50)));
        Assert.Equal(0, a.IoctlWrite(V4l2IoctlCode.UnsubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventAll }));
        b.SetControl(V4l2Const.CidBrightness, 4);
        Assert.Null(a.WaitEvent(VirtioMediaEventType.Event, TimeSpan.FromMilliseconds(50)));

        Assert.Equal(Errno.EINVAL, a.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = 0x1234 }));
        Assert.Equal(Errno.EINVAL, a.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventVsync }));
        Assert.Equal(0, a.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = V4l2Const.EventSourceChange }));
    }

    [Fact]
    public void BufferIoctlsCreateQueryPrepareQueue()
    {
        using VirtioMediaTestbed bed = NewBed(mplane: true);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yu12M, 640, 480, multiPlanar: true);
        Assert.Equal(2, s.RequestBuffers(2, V4l2Memory.Mmap));
        var create = new V4l2CreateBuffers { Count = 3, Memory = 1, Format = new V4l2Format { Type = 9 } };
        create.Format.PixMp.NumPlanes = 3;
        create.Format.PixMp.PlaneFmt(0).SizeImage = 640 * 480;
        create.Format.PixMp.PlaneFmt(1).SizeImage = 640 * 480 / 4;
        create.Format.PixMp.PlaneFmt(2).SizeImage = 640 * 480 / 4;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));
        Assert.Equal((2u, 3u), (create.Index, create.Count));
        var tooSmall = create;
        tooSmall.Format.PixMp.PlaneFmt(0).SizeImage = 100;
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.CreateBufs, ref tooSmall));
        var checkOnly = new V4l2CreateBuffers { Count = 0, Memory = 1, Format = create.Format };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref checkOnly));
        Assert.Equal(5u, checkOnly.Index);
        // max_num_buffers and the reserved words come back 0 whatever the guest sent, and the capabilities do not
        // claim SUPPORTS_MAX_NUM_BUFFERS (v4l2-compliance 1.22 sees that word as reserved).
        var dirty = new V4l2CreateBuffers { Count = 0, Memory = 1, Format = create.Format };
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref dirty, 1))[232..].Fill(0xFF);
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref dirty));
        Assert.Equal(0u, dirty.MaxNumBuffers);
        Assert.True(MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref dirty, 1))[232..].IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(0u, dirty.Capabilities & V4l2Const.BufCapSupportsMaxNumBuffers);
        Assert.NotEqual(0u, dirty.Capabilities & V4l2Const.BufCapSupportsMmap);
        // A larger sizeimage gives larger buffers (v4l2-compliance: length >= the requested sizeimage); an absurd
        // one is refused.
        var bigger = create;
        bigger.Count = 1;
        bigger.Format.PixMp.PlaneFmt(0).SizeImage = 2 * 640 * 480;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref bigger));
        Assert.Equal((5u, 1u), (bigger.Index, bigger.Count));
        var big = new V4l2Buffer { Index = 5, Type = 9, Memory = 1, Length = 3 };
        Span<V4l2Plane> bigPlanes = stackalloc V4l2Plane[3];
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref big, bigPlanes, default));
        Assert.Equal((2u * 640 * 480, 640u * 480 / 4), (bigPlanes[0].Length, bigPlanes[1].Length));
        bigger.Format.PixMp.PlaneFmt(0).SizeImage = uint.MaxValue;
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.CreateBufs, ref bigger));

        // QUERYBUF of a created buffer: 3 planes with distinct page-aligned offsets, and the guest's planes
        // pointer comes back unchanged.
        const ulong planesPointer = 0x7ffd_1234_0000;
        var b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 8, M = planesPointer };
        Span<V4l2Plane> planes = stackalloc V4l2Plane[8];
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default));
        Assert.Equal((3u, planesPointer), (b.Length, b.M));
        Assert.Equal(640u * 480 / 4, planes[2].Length);
        Assert.Equal(0ul, planes[1].M % 4096);
        Assert.NotEqual(planes[0].M, planes[1].M);
        ulong offset2 = planes[2].M;

        // PREPARE_BUF marks the buffer: QUERYBUF then shows PREPARED alone (not QUEUED/DONE/ERROR), a second
        // PREPARE_BUF is EINVAL, QBUF consumes it, and a queued buffer can be neither prepared nor queued again.
        const uint stateFlags = V4l2Const.BufFlagQueued | V4l2Const.BufFlagPrepared | V4l2Const.BufFlagDone | V4l2Const.BufFlagError;
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default));
        Assert.Equal(0u, b.Flags & stateFlags);
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.PrepareBuf, ref b, planes, default));
        Assert.Equal(V4l2Const.BufFlagPrepared, b.Flags & stateFlags);
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default));
        Assert.Equal(V4l2Const.BufFlagPrepared, b.Flags & stateFlags);
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.PrepareBuf, ref b, planes, default)); // already prepared
        b = new V4l2Buffer { Index = 3, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default));
        Assert.Equal(0u, b.Flags & stateFlags); // other buffers are not prepared
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default));
        Assert.Equal(V4l2Const.BufFlagQueued, b.Flags & stateFlags);
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default)); // already queued
        b = new V4l2Buffer { Index = 4, Type = 9, Memory = 1, Length = 3 };
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.PrepareBuf, ref b, planes, default)); // queued

        // The created buffer's plane can be mapped and streams like the others.
        (ulong addr, ulong len) = s.Mmap((uint)offset2, writable: true);
        Assert.Equal((offset2, 640ul * 480 / 4), (addr, len));
        Assert.Equal(0, s.IoctlWrite(V4l2IoctlCode.StreamOn, 9u));
        byte[] e = s.WaitEvent(VirtioMediaEventType.Dqbuf, TimeSpan.FromSeconds(5))!;
        EventDqbuf ev = MemoryMarshal.Read<EventDqbuf>(e);
        Assert.Equal((4u, 3u), (ev.Buffer.Index, ev.Buffer.Length));
        Span<byte> v = bed.Device.SharedMemory!.GetSpan(addr, (int)len);
        (byte r, byte g, byte bl) = TestPatternImage.RgbAt(640, 480, 0, TestPatternControls.Default, 300, 400);
        Assert.Equal(TestPatternImage.ToYuv(r, g, bl).V, v[200 * 320 + 150]);
        Assert.Equal(0, s.Munmap(addr));
    }

    [Fact]
    public void ExpbufQuerycapDqbufAndUnknownCodesAreEnotty()
    {
        using VirtioMediaTestbed bed = NewBed();
        using TestbedSession s = bed.OpenSession();
        byte[] out64 = new byte[256];
        foreach (V4l2IoctlCode code in new[] { V4l2IoctlCode.ExpBuf, V4l2IoctlCode.QueryCap, V4l2IoctlCode.DqBuf, V4l2IoctlCode.DqEvent,
                     V4l2IoctlCode.GJpegComp, V4l2IoctlCode.LogStatus, V4l2IoctlCode.GStd, V4l2IoctlCode.GTuner, (V4l2IoctlCode)200, (V4l2IoctlCode)0xFFFFFFFF })
        {
            Assert.Equal(Errno.ENOTTY, s.Ioctl(code, new byte[128], out64, out int written));
            Assert.Equal(0, written);
        }
    }
}
