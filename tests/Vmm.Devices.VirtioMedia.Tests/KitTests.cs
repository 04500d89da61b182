using Microsoft.Extensions.Logging;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>
/// The V4L2 device kit on its own: a second, tiny camera built from a frame source alone streams through the testbed,
/// and the control set keeps the kernel's rules for any table it is given.
/// </summary>
public sealed class KitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    // A camera in a few lines: YUYV frames whose every byte is the frame's sequence number.
    private sealed record FlatFormat() : CaptureFormat(V4l2.FourCc.Yuyv, "YUYV 4:2:2", 1, false)
    {
        public override uint BytesPerLine(int plane, uint width) => 2 * width;

        public override uint SizeImage(int plane, uint width, uint height) => 2 * width * height;

        public override uint Colorspace => V4l2Const.ColorspaceSmpte170m;
    }

    private sealed class FlatSource : ICaptureFrameSource, ICaptureFrameWriter
    {
        private static readonly CaptureFormat[] OfferedFormats = [new FlatFormat()];
        private static readonly (uint Width, uint Height)[] Sizes = [(64, 48)];
        private static readonly uint[] Rates = [30];

        public IReadOnlyList<CaptureFormat> Formats => OfferedFormats;

        public ReadOnlySpan<(uint Width, uint Height)> FrameSizes => Sizes;

        public ReadOnlySpan<uint> FrameRates => Rates;

        public string InputName => "Flat";

        public FrameLayout Layout(CaptureFormat format, uint width, uint height) =>
            FrameLayout.Create(format.FourCc, (int)width, (int)height, (int)format.BytesPerLine(0, width));

        public ICaptureFrameWriter OpenWriter() => this;

        private readonly byte[] _image = new byte[64 * 48 * 2];

        public void Fill(ref CaptureFrame frame)
        {
            _image.AsSpan().Fill((byte)frame.Sequence);
            frame.Plane0.Write(0, _image);
        }
    }

    private sealed class FlatBackend : IMediaBackend
    {
        private readonly V4l2CaptureDevice _device = new(new FlatSource(),
            new V4l2ControlSet(
            [
                V4l2ControlInfo.Class(V4l2Const.CtrlClassUser, "User Controls"),
                new(LutId, V4l2Const.CtrlTypeU8, "LUT", 0, 200, 1, 7, 0, Dims: [4, 8]),
            ]),
            multiPlanar: false, new FlatFormat(), 64, 48, 30, paced: false);

        public uint DeviceCaps => _device.DeviceCaps;

        public string Card => "flat";

        public int Open(IMediaSessionHost host, out MediaBackendSession? session)
        {
            session = _device.Open(host);
            return 0;
        }

        public void Dispose() => _device.Close();
    }

    private sealed class FlatOptions : IMediaBackendOptions
    {
        public ulong SharedMemorySize => 1UL << 20;

        public MediaDeviceLimits Limits => MediaDeviceLimits.Default;

        public IMediaBackend CreateBackend(ILogger logger) => new FlatBackend();
    }

    [Fact]
    public void A_camera_made_of_a_frame_source_alone_streams_through_the_kit()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new FlatOptions());
        using TestbedSession s = bed.OpenSession();
        V4l2Format f = s.SetFormat(FourCc.Make('M', 'J', 'P', 'G'), 1000, 1000);
        // Replaced by what the source offers, never an error.
        Assert.Equal((FourCc.Yuyv, 64u, 48u, 64u * 48 * 2), (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height, f.Pix.SizeImage));
        Assert.Equal(2, s.RequestBuffers(2, V4l2Memory.Mmap));
        s.QueueAllBuffers();
        s.StreamOn();
        for (uint i = 0; i < 4; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
            Assert.Equal(-1, frame.Plane(0).IndexOfAnyExcept((byte)i));
        } // disposing the frame queues its buffer again
        s.StreamOff();
    }

    // A driver-private control (V4L2_CID_USER_BASE + 0x1000 + 1): a 4×8 array of U8, 0…200, default 7.
    private const uint LutId = 0x00981901;

    // G/S/TRY_EXT_CTRLS of the LUT alone with its payload in guest pages at 0x200000; the payload's bytes after it.
    private static (int Status, V4l2ExtControl Control, byte[] Payload) LutIoctl(VirtioMediaTestbed bed, TestbedSession s, V4l2IoctlCode code,
        uint size, byte[]? write = null, uint which = V4l2Const.CtrlWhichCurVal)
    {
        var pages = new Vmm.Core.Memory.GuestAddress(0x200000);
        bed.GuestMemory.GetSpan(pages, 64).Clear();
        write?.CopyTo(bed.GuestMemory.GetSpan(pages, 64));
        byte[] input = new byte[32 + 20 + (size > 0 ? 16 : 0)];
        System.Runtime.InteropServices.MemoryMarshal.Write(input, new V4l2ExtControls { Which = which, Count = 1, Controls = 0x7f0000001000 });
        System.Runtime.InteropServices.MemoryMarshal.Write(input.AsSpan(32), new V4l2ExtControl { Id = LutId, Size = size, Value64 = 0x7f0000002000 });
        if (size > 0)
        {
            System.Runtime.InteropServices.MemoryMarshal.Write(input.AsSpan(52), new SgEntry { Start = 0x200000, Length = size });
        }
        byte[] output = new byte[32 + 20];
        int status = s.Ioctl(code, input, output, out _);
        return (status, System.Runtime.InteropServices.MemoryMarshal.Read<V4l2ExtControl>(output.AsSpan(32)), bed.GuestMemory.GetSpan(pages, 32).ToArray());
    }

    [Fact]
    public void An_array_control_is_enumerated_read_written_and_clamped_through_guest_pages()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new FlatOptions());
        using TestbedSession s = bed.OpenSession();
        // NEXT_CTRL enumerates value controls only, NEXT_COMPOUND payload ones.
        var q = new V4l2QueryExtCtrl { Id = (V4l2Const.CtrlClassUser | 1) | V4l2Const.CtrlFlagNextCtrl };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref q));
        q = new V4l2QueryExtCtrl { Id = V4l2Const.CtrlFlagNextCompound };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref q));
        unsafe
        {
            Assert.Equal((LutId, V4l2Const.CtrlTypeU8, 1u, 32u, 2u, 4u, 8u, V4l2Const.CtrlFlagHasPayload),
                (q.Id, q.Type, q.ElemSize, q.Elems, q.NrOfDims, q.Dims[0], q.Dims[1], q.Flags & V4l2Const.CtrlFlagHasPayload));
        }
        var legacy = new V4l2Control { Id = LutId };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GCtrl, ref legacy));

        // Asking with no room says how much is needed.
        (int status, V4l2ExtControl c, _) = LutIoctl(bed, s, V4l2IoctlCode.GExtCtrls, 0);
        Assert.Equal((Errno.ENOSPC, 32u), (status, c.Size));
        (status, c, byte[] value) = LutIoctl(bed, s, V4l2IoctlCode.GExtCtrls, 32);
        Assert.Equal(0, status);
        Assert.Equal(0x7f0000002000L, c.Value64); // the guest's pointer goes back as sent
        Assert.Equal(-1, value.AsSpan().IndexOfAnyExcept((byte)7));

        byte[] wanted = Enumerable.Range(0, 32).Select(i => (byte)(i * 8)).ToArray(); // 208 and up are out of range
        (status, _, value) = LutIoctl(bed, s, V4l2IoctlCode.TryExtCtrls, 32, wanted);
        Assert.Equal(0, status);
        Assert.Equal(wanted.Select(b => Math.Min(b, (byte)200)).ToArray(), value); // TRY answers the adjusted values
        Assert.Equal(-1, LutIoctl(bed, s, V4l2IoctlCode.GExtCtrls, 32).Payload.AsSpan().IndexOfAnyExcept((byte)7)); // and keeps none
        Assert.Equal(0, LutIoctl(bed, s, V4l2IoctlCode.SExtCtrls, 32, wanted).Status);
        Assert.Equal(wanted.Select(b => Math.Min(b, (byte)200)).ToArray(), LutIoctl(bed, s, V4l2IoctlCode.GExtCtrls, 32).Payload);
        Assert.Equal(-1, LutIoctl(bed, s, V4l2IoctlCode.GExtCtrls, 32, which: V4l2Const.CtrlWhichDefVal).Payload.AsSpan().IndexOfAnyExcept((byte)7));
        Assert.Equal(Errno.EFAULT, LutIoctl(bed, s, V4l2IoctlCode.SExtCtrls, 16, wanted).Status); // a payload too small to set
    }

    [Fact]
    public void A_backend_reads_an_array_controls_elements_and_bad_arrays_are_refused_at_construction()
    {
        var set = new V4l2ControlSet([new(LutId, V4l2Const.CtrlTypeU16, "Gains", 0, 1000, 1, 300, 0, Dims: [3])]);
        Assert.Equal(new byte[] { 0x2c, 0x01, 0x2c, 0x01, 0x2c, 0x01 }, set.Payload(LutId)); // 300, little-endian
        Assert.Null(set.Payload(V4l2Const.CidBrightness));
        Assert.Throws<ArgumentException>(() => new V4l2ControlSet([new(LutId, V4l2Const.CtrlTypeMenu, "Menus", 0, 1, 1, 0, 0, Dims: [2])]));
        Assert.Throws<ArgumentException>(() => new V4l2ControlSet([new(LutId, V4l2Const.CtrlTypeU8, "Empty", 0, 1, 1, 0, 0, Dims: [0])]));
        Assert.Throws<ArgumentException>(() => new V4l2ControlSet([new(LutId, V4l2Const.CtrlTypeU32, "Huge", 0, 1, 1, 0, 0, Dims: [1024, 1024])]));
    }

    [Fact]
    public void A_control_table_must_be_sorted_by_id()
    {
        V4l2ControlInfo brightness = new(V4l2Const.CidBrightness, V4l2Const.CtrlTypeInteger, "Brightness", 0, 255, 1, 128, 0);
        V4l2ControlInfo contrast = new(V4l2Const.CidContrast, V4l2Const.CtrlTypeInteger, "Contrast", 0, 255, 1, 128, 0);
        Assert.Throws<ArgumentException>(() => new V4l2ControlSet([contrast, brightness]));
        Assert.Throws<ArgumentException>(() => new V4l2ControlSet([brightness, brightness]));
    }

    [Fact]
    public void Next_ctrl_walks_the_table_in_id_order_and_menus_answer_only_for_menu_controls()
    {
        var set = new V4l2ControlSet(
        [
            V4l2ControlInfo.Class(V4l2Const.CtrlClassUser, "User Controls"),
            new(V4l2Const.CidBrightness, V4l2Const.CtrlTypeInteger, "Brightness", -10, 10, 1, 0, 0),
            new(V4l2Const.CidTestPattern, V4l2Const.CtrlTypeMenu, "Pattern", 0, 1, 1, 0, 0, ["A", "B"]),
        ]);
        var ids = new List<uint>();
        var query = new V4l2QueryCtrl { Id = V4l2Const.CtrlFlagNextCtrl };
        while (set.Query(ref query) == 0)
        {
            ids.Add(query.Id);
            query = new V4l2QueryCtrl { Id = query.Id | V4l2Const.CtrlFlagNextCtrl };
        }
        Assert.Equal([V4l2Const.CtrlClassUser | 1, V4l2Const.CidBrightness, V4l2Const.CidTestPattern], ids);

        var menu = new V4l2QueryMenu { Id = V4l2Const.CidTestPattern, Index = 1 };
        Assert.Equal(0, set.QueryMenu(ref menu));
        menu = new V4l2QueryMenu { Id = V4l2Const.CidBrightness, Index = 0 };
        Assert.Equal(Errno.EINVAL, set.QueryMenu(ref menu));

        // Integer values are clamped, menu indices outside the range are ERANGE.
        var setter = new V4l2EventSubscriptions(null!); // not a listener: no events to send
        var control = new V4l2Control { Id = V4l2Const.CidBrightness, Value = 99 };
        Assert.Equal(0, set.Set(ref control, setter));
        Assert.Equal(10, control.Value);
        Assert.Equal(10, set.Value(V4l2Const.CidBrightness));
        control = new V4l2Control { Id = V4l2Const.CidTestPattern, Value = 2 };
        Assert.Equal(Errno.ERANGE, set.Set(ref control, setter));
    }
}
