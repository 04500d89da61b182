using System.Runtime.CompilerServices;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>Sizes, offsets and ioctl numbers pinned against the Linux UAPI values (x86_64 offsetof/sizeof probes of
/// videodev2.h and the virtio-media protocol, see docs/virtio-media-protocol.md §4, §6, §8). The same probe built
/// for aarch64 against Debian's arm64 headers gave every V4L2 size here and the ioctl numbers unchanged, so these
/// pins hold on both architectures.</summary>
public unsafe class LayoutTests
{
    private static int Off<T>(ref T s, ref byte field) where T : unmanaged =>
        (int)Unsafe.ByteOffset(ref Unsafe.As<T, byte>(ref s), ref field);

    [Theory]
    [InlineData(typeof(V4l2Format), 208)]
    [InlineData(typeof(V4l2PixFormat), 48)]
    [InlineData(typeof(V4l2PixFormatMplane), 192)]
    [InlineData(typeof(V4l2PlanePixFormat), 20)]
    [InlineData(typeof(V4l2FmtDesc), 64)]
    [InlineData(typeof(V4l2RequestBuffers), 20)]
    [InlineData(typeof(V4l2Buffer), 88)]
    [InlineData(typeof(V4l2Plane), 64)]
    [InlineData(typeof(V4l2CreateBuffers), 256)]
    [InlineData(typeof(V4l2FrmSizeEnum), 44)]
    [InlineData(typeof(V4l2FrmIvalEnum), 52)]
    [InlineData(typeof(V4l2StreamParm), 204)]
    [InlineData(typeof(V4l2Input), 80)]
    [InlineData(typeof(V4l2QueryCtrl), 68)]
    [InlineData(typeof(V4l2QueryExtCtrl), 232)]
    [InlineData(typeof(V4l2QueryMenu), 44)]
    [InlineData(typeof(V4l2Control), 8)]
    [InlineData(typeof(V4l2ExtControl), 20)]
    [InlineData(typeof(V4l2ExtControls), 32)]
    [InlineData(typeof(V4l2EventSubscription), 32)]
    [InlineData(typeof(V4l2Event), 136)]
    [InlineData(typeof(V4l2Selection), 64)]
    [InlineData(typeof(V4l2ExportBuffer), 64)]
    [InlineData(typeof(V4l2Timecode), 16)]
    [InlineData(typeof(CmdHeader), 8)]
    [InlineData(typeof(RespHeader), 8)]
    [InlineData(typeof(RespOpen), 16)]
    [InlineData(typeof(CmdClose), 16)]
    [InlineData(typeof(CmdIoctl), 16)]
    [InlineData(typeof(CmdMmap), 20)]
    [InlineData(typeof(RespMmap), 24)]
    [InlineData(typeof(CmdMunmap), 16)]
    [InlineData(typeof(SgEntry), 16)]
    [InlineData(typeof(EventHeader), 8)]
    [InlineData(typeof(EventError), 16)]
    [InlineData(typeof(EventDqbuf), 608)]
    [InlineData(typeof(EventEvent), 144)]
    [InlineData(typeof(VirtioMediaConfig), 40)]
    [InlineData(typeof(V4l2Capability), 104)]
    public void StructSizeMatchesKernel(Type type, int size)
    {
        int actual = (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(type).Invoke(null, null)!;
        Assert.Equal(size, actual);
    }

    [Fact]
    public void FormatOffsets()
    {
        var f = new V4l2Format();
        Assert.Equal(8, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.Width)));
        Assert.Equal(16, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.PixelFormat)));
        Assert.Equal(24, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.BytesPerLine)));
        Assert.Equal(28, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.SizeImage)));
        Assert.Equal(32, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.Colorspace)));
        Assert.Equal(52, Off(ref f, ref Unsafe.As<uint, byte>(ref f.Pix.XferFunc)));
        Assert.Equal(24, Off(ref f, ref Unsafe.As<uint, byte>(ref f.PixMp.Colorspace)));
        Assert.Equal(28, Off(ref f, ref Unsafe.As<uint, byte>(ref f.PixMp.PlaneFmt(0).SizeImage)));
        Assert.Equal(32, Off(ref f, ref Unsafe.As<uint, byte>(ref f.PixMp.PlaneFmt(0).BytesPerLine)));
        Assert.Equal(28 + 20 * 7, Off(ref f, ref Unsafe.As<uint, byte>(ref f.PixMp.PlaneFmt(7).SizeImage)));
        Assert.Equal(188, Off(ref f, ref f.PixMp.NumPlanes));
        Assert.Equal(192, Off(ref f, ref f.PixMp.XferFunc));
    }

    [Fact]
    public void BufferAndPlaneOffsets()
    {
        var b = new V4l2Buffer();
        Assert.Equal(16, Off(ref b, ref Unsafe.As<uint, byte>(ref b.Field)));
        Assert.Equal(24, Off(ref b, ref Unsafe.As<long, byte>(ref b.TimestampSec)));
        Assert.Equal(32, Off(ref b, ref Unsafe.As<long, byte>(ref b.TimestampUsec)));
        Assert.Equal(40, Off(ref b, ref Unsafe.As<V4l2Timecode, byte>(ref b.Timecode)));
        Assert.Equal(56, Off(ref b, ref Unsafe.As<uint, byte>(ref b.Sequence)));
        Assert.Equal(60, Off(ref b, ref Unsafe.As<uint, byte>(ref b.Memory)));
        Assert.Equal(64, Off(ref b, ref Unsafe.As<ulong, byte>(ref b.M)));
        Assert.Equal(72, Off(ref b, ref Unsafe.As<uint, byte>(ref b.Length)));
        Assert.Equal(80, Off(ref b, ref Unsafe.As<uint, byte>(ref b.RequestFd)));
        var p = new V4l2Plane();
        Assert.Equal(8, Off(ref p, ref Unsafe.As<ulong, byte>(ref p.M)));
        Assert.Equal(16, Off(ref p, ref Unsafe.As<uint, byte>(ref p.DataOffset)));
        var c = new V4l2CreateBuffers();
        Assert.Equal(16, Off(ref c, ref Unsafe.As<uint, byte>(ref c.Format.Type)));
        Assert.Equal(224, Off(ref c, ref Unsafe.As<uint, byte>(ref c.Capabilities)));
        Assert.Equal(228, Off(ref c, ref Unsafe.As<uint, byte>(ref c.Flags)));
        var e = new EventDqbuf();
        Assert.Equal(8, Off(ref e, ref Unsafe.As<V4l2Buffer, byte>(ref e.Buffer)));
        Assert.Equal(96, Off(ref e, ref Unsafe.As<V4l2Plane, byte>(ref e.Planes[0])));
        Assert.Equal(96 + 64 * 7, Off(ref e, ref Unsafe.As<V4l2Plane, byte>(ref e.Planes[7])));
    }

    [Fact]
    public void ControlAndEventOffsets()
    {
        var q = new V4l2QueryExtCtrl();
        Assert.Equal(40, Off(ref q, ref Unsafe.As<long, byte>(ref q.Minimum)));
        Assert.Equal(64, Off(ref q, ref Unsafe.As<long, byte>(ref q.DefaultValue)));
        Assert.Equal(72, Off(ref q, ref Unsafe.As<uint, byte>(ref q.Flags)));
        Assert.Equal(84, Off(ref q, ref Unsafe.As<uint, byte>(ref q.NrOfDims)));
        var ec = new V4l2ExtControl();
        Assert.Equal(12, Off(ref ec, ref Unsafe.As<int, byte>(ref ec.Value)));
        var ecs = new V4l2ExtControls();
        Assert.Equal(8, Off(ref ecs, ref Unsafe.As<uint, byte>(ref ecs.ErrorIdx)));
        Assert.Equal(24, Off(ref ecs, ref Unsafe.As<ulong, byte>(ref ecs.Controls)));
        var ev = new V4l2Event();
        Assert.Equal(16, Off(ref ev, ref Unsafe.As<int, byte>(ref ev.CtrlValue)));
        Assert.Equal(40, Off(ref ev, ref Unsafe.As<int, byte>(ref ev.CtrlDefaultValue)));
        Assert.Equal(72, Off(ref ev, ref Unsafe.As<uint, byte>(ref ev.Pending)));
        Assert.Equal(80, Off(ref ev, ref Unsafe.As<long, byte>(ref ev.TimestampSec)));
        Assert.Equal(96, Off(ref ev, ref Unsafe.As<uint, byte>(ref ev.Id)));
        var input = new V4l2Input();
        Assert.Equal(36, Off(ref input, ref Unsafe.As<uint, byte>(ref input.Type)));
        Assert.Equal(48, Off(ref input, ref Unsafe.As<ulong, byte>(ref input.Std)));
        Assert.Equal(60, Off(ref input, ref Unsafe.As<uint, byte>(ref input.Capabilities)));
        var parm = new V4l2StreamParm();
        Assert.Equal(12, Off(ref parm, ref Unsafe.As<V4l2Fract, byte>(ref parm.TimePerFrame)));
        Assert.Equal(24, Off(ref parm, ref Unsafe.As<uint, byte>(ref parm.ReadBuffers)));
        var iv = new V4l2FrmIvalEnum();
        Assert.Equal(20, Off(ref iv, ref Unsafe.As<V4l2Fract, byte>(ref iv.Discrete)));
        var sel = new V4l2Selection();
        Assert.Equal(12, Off(ref sel, ref Unsafe.As<V4l2Rect, byte>(ref sel.Rect)));
        var mmap = new CmdMmap();
        Assert.Equal(16, Off(ref mmap, ref Unsafe.As<uint, byte>(ref mmap.Offset)));
        var rm = new RespMmap();
        Assert.Equal(16, Off(ref rm, ref Unsafe.As<ulong, byte>(ref rm.Length)));
    }

    // Full request values from docs/virtio-media-protocol.md §8.1 (the kernel's _IOC values on x86_64).
    [Theory]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.EnumFmt, 0xC0405602u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.GFmt, 0xC0D05604u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.ReqBufs, 0xC0145608u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.QueryBuf, 0xC0585609u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.QBuf, 0xC058560Fu)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.ExpBuf, 0xC0405610u)]
    [InlineData(IoctlDirection.Write, V4l2IoctlCode.StreamOn, 0x40045612u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.GParm, 0xC0CC5615u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.EnumInput, 0xC050561Au)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.GCtrl, 0xC008561Bu)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.QueryCtrl, 0xC0445624u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.QueryMenu, 0xC02C5625u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.GExtCtrls, 0xC0205647u)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.EnumFrameSizes, 0xC02C564Au)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.EnumFrameIntervals, 0xC034564Bu)]
    [InlineData(IoctlDirection.Write, V4l2IoctlCode.SubscribeEvent, 0x4020565Au)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.CreateBufs, 0xC100565Cu)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.GSelection, 0xC040565Eu)]
    [InlineData(IoctlDirection.Read | IoctlDirection.Write, V4l2IoctlCode.QueryExtCtrl, 0xC0E85667u)]
    [InlineData(IoctlDirection.Read, V4l2IoctlCode.DqEvent, 0x80885659u)]
    [InlineData(IoctlDirection.Read, V4l2IoctlCode.QueryCap, 0x80685600u)]
    public void IoctlRequestValuesMatchKernel(IoctlDirection dir, V4l2IoctlCode code, uint expected)
    {
        int size = code switch
        {
            V4l2IoctlCode.EnumFmt => Unsafe.SizeOf<V4l2FmtDesc>(),
            V4l2IoctlCode.GFmt => Unsafe.SizeOf<V4l2Format>(),
            V4l2IoctlCode.ReqBufs => Unsafe.SizeOf<V4l2RequestBuffers>(),
            V4l2IoctlCode.QueryBuf or V4l2IoctlCode.QBuf => Unsafe.SizeOf<V4l2Buffer>(),
            V4l2IoctlCode.ExpBuf => Unsafe.SizeOf<V4l2ExportBuffer>(),
            V4l2IoctlCode.StreamOn => sizeof(uint),
            V4l2IoctlCode.GParm => Unsafe.SizeOf<V4l2StreamParm>(),
            V4l2IoctlCode.EnumInput => Unsafe.SizeOf<V4l2Input>(),
            V4l2IoctlCode.GCtrl => Unsafe.SizeOf<V4l2Control>(),
            V4l2IoctlCode.QueryCtrl => Unsafe.SizeOf<V4l2QueryCtrl>(),
            V4l2IoctlCode.QueryMenu => Unsafe.SizeOf<V4l2QueryMenu>(),
            V4l2IoctlCode.GExtCtrls => Unsafe.SizeOf<V4l2ExtControls>(),
            V4l2IoctlCode.EnumFrameSizes => Unsafe.SizeOf<V4l2FrmSizeEnum>(),
            V4l2IoctlCode.EnumFrameIntervals => Unsafe.SizeOf<V4l2FrmIvalEnum>(),
            V4l2IoctlCode.SubscribeEvent => Unsafe.SizeOf<V4l2EventSubscription>(),
            V4l2IoctlCode.CreateBufs => Unsafe.SizeOf<V4l2CreateBuffers>(),
            V4l2IoctlCode.GSelection => Unsafe.SizeOf<V4l2Selection>(),
            V4l2IoctlCode.QueryExtCtrl => Unsafe.SizeOf<V4l2QueryExtCtrl>(),
            V4l2IoctlCode.DqEvent => Unsafe.SizeOf<V4l2Event>(),
            V4l2IoctlCode.QueryCap => Unsafe.SizeOf<V4l2Capability>(),
            _ => throw new ArgumentOutOfRangeException(nameof(code)),
        };
        uint request = V4l2Ioctl.Request(dir, code, size);
        Assert.Equal(expected, request);
        Assert.Equal(code, V4l2Ioctl.CodeOf(request));
    }

    // The flat-payload ioctls a proxy passes through as bytes: kernel request values (videodev2.h, LP64) from
    // their table's size and kernel direction.
    [Theory]
    [InlineData(V4l2IoctlCode.GStd, 0x80085617u)]
    [InlineData(V4l2IoctlCode.SStd, 0x40085618u)]
    [InlineData(V4l2IoctlCode.EnumStd, 0xC0485619u)]
    [InlineData(V4l2IoctlCode.GTuner, 0xC054561Du)]
    [InlineData(V4l2IoctlCode.STuner, 0x4054561Eu)]
    [InlineData(V4l2IoctlCode.GAudio, 0x80345621u)]
    [InlineData(V4l2IoctlCode.SAudio, 0x40345622u)]
    [InlineData(V4l2IoctlCode.GOutput, 0x8004562Eu)]
    [InlineData(V4l2IoctlCode.SOutput, 0xC004562Fu)]
    [InlineData(V4l2IoctlCode.EnumOutput, 0xC0485630u)]
    [InlineData(V4l2IoctlCode.GAudout, 0x80345631u)]
    [InlineData(V4l2IoctlCode.SAudout, 0x40345632u)]
    [InlineData(V4l2IoctlCode.GModulator, 0xC0445636u)]
    [InlineData(V4l2IoctlCode.SModulator, 0x40445637u)]
    [InlineData(V4l2IoctlCode.GFrequency, 0xC02C5638u)]
    [InlineData(V4l2IoctlCode.SFrequency, 0x402C5639u)]
    [InlineData(V4l2IoctlCode.QueryStd, 0x8008563Fu)]
    [InlineData(V4l2IoctlCode.EnumAudio, 0xC0345641u)]
    [InlineData(V4l2IoctlCode.EnumAudout, 0xC0345642u)]
    [InlineData(V4l2IoctlCode.GEncIndex, 0x8818564Cu)]
    [InlineData(V4l2IoctlCode.EncoderCmd, 0xC028564Du)]
    [InlineData(V4l2IoctlCode.TryEncoderCmd, 0xC028564Eu)]
    [InlineData(V4l2IoctlCode.SDvTimings, 0xC0845657u)]
    [InlineData(V4l2IoctlCode.GDvTimings, 0xC0845658u)]
    [InlineData(V4l2IoctlCode.DecoderCmd, 0xC0485660u)]
    [InlineData(V4l2IoctlCode.TryDecoderCmd, 0xC0485661u)]
    [InlineData(V4l2IoctlCode.EnumDvTimings, 0xC0945662u)]
    [InlineData(V4l2IoctlCode.QueryDvTimings, 0x80845663u)]
    [InlineData(V4l2IoctlCode.DvTimingsCap, 0xC0905664u)]
    [InlineData(V4l2IoctlCode.EnumFreqBands, 0xC0405665u)]
    [InlineData(V4l2IoctlCode.SHwFreqSeek, 0x40305652u)]
    public void PlainIoctlRequestValuesMatchKernel(V4l2IoctlCode code, uint expected)
    {
        Assert.True(PlainIoctls.TryGet(code, out PlainIoctl plain));
        Assert.Equal(expected, V4l2Ioctl.Request(plain.Kernel, code, plain.Size));
        Assert.True(plain.Size <= PlainIoctls.MaxSize);
    }

    [Fact]
    public void EveryPlainIoctlIsPinned() => Assert.Equal(31, PlainIoctls.All.Length);

    [Fact]
    public void FourCcValues()
    {
        Assert.Equal(FourCc.Yuyv, FourCc.Make('Y', 'U', 'Y', 'V'));
        Assert.Equal(FourCc.Nv12, FourCc.Make('N', 'V', '1', '2'));
        Assert.Equal(FourCc.Yu12, FourCc.Make('Y', 'U', '1', '2'));
        Assert.Equal(FourCc.Nv12M, FourCc.Make('N', 'M', '1', '2'));
        Assert.Equal(FourCc.Yu12M, FourCc.Make('Y', 'M', '1', '2'));
        Assert.Equal(FourCc.Rgb24, FourCc.Make('R', 'G', 'B', '3'));
        Assert.Equal(FourCc.Bgr24, FourCc.Make('B', 'G', 'R', '3'));
        Assert.Equal(0x009F0903u, V4l2Const.CidTestPattern);
    }
}
