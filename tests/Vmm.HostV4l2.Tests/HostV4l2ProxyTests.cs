using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Backends.HostV4l2;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;
using Xunit.Abstractions;

namespace Vmm.HostV4l2.Tests;

/// <summary>
/// The host V4L2 proxy against a real driver: vivid, in the lab. Each test drives the proxy through the embedded
/// testbed (the guest driver's exact wire layouts) and compares with the same node used directly.
/// </summary>
[Collection(VividCollection.Name)]
public sealed class HostV4l2ProxyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan FrameTimeout = TimeSpan.FromSeconds(10);

    private static string Node() => Vivid.FindCaptureNode() ?? throw new InvalidOperationException(
        "no vivid capture node: under CI these tests must run in the lab (lab/run.sh loads vivid)");

    private static VirtioMediaTestbed Proxy(string node) =>
        VirtioMediaTestbed.Create(new HostV4l2Options { Path = node }, guestRamSize: 128UL << 20);

    /// <summary>A proxy built from a whole <c>--media</c> spec, options included, as the CLI builds it.</summary>
    private static VirtioMediaTestbed ProxyFromSpec(string spec)
    {
        Assert.True(MediaBackendSpecs.TryParse(spec, out IMediaBackendOptions? options, out string? error), error);
        return VirtioMediaTestbed.Create(options, guestRamSize: 128UL << 20);
    }

    private static HostV4l2Backend Backend(VirtioMediaTestbed bed) => (HostV4l2Backend)bed.Device.Backend;

    [VividFact]
    public void A_bad_host_device_is_one_clear_line()
    {
        string node = Node();
        string Error(string spec)
        {
            Assert.True(MediaBackendSpecs.TryParse(spec, out IMediaBackendOptions? options, out string? parseError), parseError);
            var e = Assert.Throws<MediaBackendException>(() => options.CreateBackend(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
            Assert.DoesNotContain('\n', e.Message);
            output.WriteLine(e.Message);
            return e.Message;
        }
        Assert.Contains("no such device node", Error("/dev/video-none"));
        Assert.Contains("not a V4L2 device", Error("/dev/null"));
        string? outputNode = FindVividNode(caps => (caps & (V4l2Const.CapVideoCapture | V4l2Const.CapVideoCaptureMplane)) == 0 &&
                                                   (caps & V4l2Const.CapVideoOutput) != 0);
        if (outputNode is not null)
        {
            Assert.Contains("no video capture capability", Error(outputNode));
        }
        using (DirectNode other = DirectNode.Open(node))
        {
            var req = new V4l2RequestBuffers { Count = 1, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap };
            Assert.Equal(0, other.Rw(V4l2IoctlCode.ReqBufs, ref req));
            Assert.Contains("busy", Error(node));
        }
        Assert.False(MediaBackendSpecs.TryParse(node + ",shm=3", out _, out string? badShm));
        Assert.Contains("shm", badShm);
    }

    private static string? FindVividNode(Func<uint, bool> deviceCaps)
    {
        foreach (string path in Directory.GetFiles("/dev", "video*"))
        {
            using DirectNode n = DirectNode.Open(path);
            V4l2Capability c = n.QueryCap();
            if (Vivid.Text(c) == "vivid" && deviceCaps(c.DeviceCaps))
            {
                return path;
            }
        }
        return null;
    }

    [VividFact]
    public void Formats_frame_sizes_and_intervals_are_the_hosts()
    {
        string node = Node();
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        using DirectNode direct = DirectNode.Open(node);
        List<string> proxied = Enumerate((V4l2IoctlCode c, ref V4l2FmtDesc d) => s.Ioctl(c, ref d),
            (V4l2IoctlCode c, ref V4l2FrmSizeEnum d) => s.Ioctl(c, ref d), (V4l2IoctlCode c, ref V4l2FrmIvalEnum d) => s.Ioctl(c, ref d));
        List<string> host = Enumerate((V4l2IoctlCode c, ref V4l2FmtDesc d) => direct.Rw(c, ref d),
            (V4l2IoctlCode c, ref V4l2FrmSizeEnum d) => direct.Rw(c, ref d), (V4l2IoctlCode c, ref V4l2FrmIvalEnum d) => direct.Rw(c, ref d));
        output.WriteLine($"{host.Count} format/size/interval entries, e.g. {string.Join("; ", host.Take(4))}");
        Assert.True(host.Count > 10, "vivid enumerates formats, sizes and intervals");
        Assert.Equal(host, proxied);
    }

    private delegate int Call<T>(V4l2IoctlCode code, ref T value) where T : unmanaged;

    private static List<string> Enumerate(Call<V4l2FmtDesc> fmt, Call<V4l2FrmSizeEnum> size, Call<V4l2FrmIvalEnum> ival)
    {
        var all = new List<string>();
        for (uint i = 0; ; i++)
        {
            var d = new V4l2FmtDesc { Index = i, Type = (uint)V4l2BufferType.VideoCapture };
            if (fmt(V4l2IoctlCode.EnumFmt, ref d) != 0)
            {
                break;
            }
            all.Add($"fmt {FourCc.ToString(d.PixelFormat)} flags {d.Flags}");
            for (uint j = 0; j < 64; j++)
            {
                var fs = new V4l2FrmSizeEnum { Index = j, PixelFormat = d.PixelFormat };
                if (size(V4l2IoctlCode.EnumFrameSizes, ref fs) != 0)
                {
                    break;
                }
                all.Add($"  size type {fs.Type} {fs.Width}x{fs.Height}");
                if (fs.Type != 1)
                {
                    break; // stepwise/continuous: one entry
                }
                for (uint k = 0; k < 64; k++)
                {
                    var fi = new V4l2FrmIvalEnum { Index = k, PixelFormat = d.PixelFormat, Width = fs.Width, Height = fs.Height };
                    if (ival(V4l2IoctlCode.EnumFrameIntervals, ref fi) != 0)
                    {
                        break;
                    }
                    all.Add($"    ival type {fi.Type} {fi.Discrete.Numerator}/{fi.Discrete.Denominator}");
                }
            }
        }
        return all;
    }

    [VividFact]
    public void Standards_tuners_and_dv_timings_are_the_hosts_on_every_input()
    {
        string node = Node();
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        using DirectNode direct = DirectNode.Open(node);
        var lines = new List<string>();
        int compared = 0;
        for (uint input = 0; ; input++)
        {
            var desc = new V4l2Input { Index = input };
            if (s.Ioctl(V4l2IoctlCode.EnumInput, ref desc) != 0)
            {
                break;
            }
            uint selected = input;
            Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SInput, ref selected));
            // Each plain ioctl with its first u32 (an index) walked until both sides fail.
            foreach (V4l2IoctlCode code in new[] { V4l2IoctlCode.GStd, V4l2IoctlCode.QueryStd, V4l2IoctlCode.EnumStd, V4l2IoctlCode.GTuner,
                         V4l2IoctlCode.GFrequency, V4l2IoctlCode.GDvTimings, V4l2IoctlCode.EnumDvTimings, V4l2IoctlCode.DvTimingsCap,
                         V4l2IoctlCode.EnumAudio, V4l2IoctlCode.GAudio })
            {
                Assert.True(PlainIoctls.TryGet(code, out PlainIoctl plain));
                bool indexed = code is V4l2IoctlCode.EnumStd or V4l2IoctlCode.EnumDvTimings or V4l2IoctlCode.EnumAudio;
                for (uint index = 0; index < (indexed ? 64u : 1u); index++)
                {
                    byte[] request = new byte[plain.Size];
                    BitConverter.TryWriteBytes(request, index);
                    byte[] host = (byte[])request.Clone();
                    int hostStatus = direct.Raw(code, plain.Kernel, host);
                    byte[] answer = new byte[plain.Size];
                    int proxyStatus = s.Ioctl(code, (plain.Sent & IoctlDirection.Write) != 0 ? request : [], answer, out int written);
                    Assert.True(hostStatus == proxyStatus, $"input {input} {code}[{index}]: host errno {hostStatus}, proxied {proxyStatus}");
                    if (hostStatus != 0)
                    {
                        break;
                    }
                    Assert.Equal(plain.Size, written);
                    Assert.Equal(host, answer);
                    compared++;
                    if (index == 0)
                    {
                        lines.Add($"input {input} {code}");
                    }
                }
            }
        }
        uint first = 0;
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.SInput, ref first));
        output.WriteLine($"{compared} answers equal to the host's: {string.Join(", ", lines)}");
        Assert.Contains(lines, l => l.EndsWith("EnumStd", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith("EnumDvTimings", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.EndsWith("GTuner", StringComparison.Ordinal));
    }

    [VividFact]
    public unsafe void Controls_round_trip_including_string_payloads()
    {
        string node = Node();
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        using DirectNode direct = DirectNode.Open(node);

        // The same controls, in the same order, with the same ranges.
        var proxied = new List<string>();
        var host = new List<string>();
        uint stringId = 0;
        long stringMax = 0;
        for (uint id = V4l2Const.CtrlFlagNextCtrl | V4l2Const.CtrlFlagNextCompound; ;)
        {
            var q = new V4l2QueryExtCtrl { Id = id };
            var h = q;
            int ps = s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref q);
            int hs = direct.Rw(V4l2IoctlCode.QueryExtCtrl, ref h);
            Assert.Equal(hs, ps);
            if (ps != 0)
            {
                break;
            }
            proxied.Add(Describe(q));
            host.Add(Describe(h));
            if (q.Type == 7) // V4L2_CTRL_TYPE_STRING
            {
                stringId = q.Id;
                stringMax = q.Maximum;
            }
            id = q.Id | V4l2Const.CtrlFlagNextCtrl | V4l2Const.CtrlFlagNextCompound;
        }
        output.WriteLine($"{host.Count} controls, e.g. {string.Join("; ", host.Take(3))}");
        Assert.True(host.Count > 20);
        Assert.Equal(host, proxied);

        // A value set through the proxy is the host's value.
        var range = new V4l2QueryCtrl { Id = V4l2Const.CidBrightness };
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.QueryCtrl, ref range));
        int wanted = range.Maximum - 7;
        s.SetControl(V4l2Const.CidBrightness, wanted);
        var read = new V4l2Control { Id = V4l2Const.CidBrightness };
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.GCtrl, ref read));
        Assert.Equal(wanted, read.Value);
        var back = new V4l2Control { Id = V4l2Const.CidBrightness };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GCtrl, ref back));
        Assert.Equal(wanted, back.Value);
        var restore = new V4l2Control { Id = V4l2Const.CidBrightness, Value = range.DefaultValue };
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.SCtrl, ref restore));

        // A string control: its payload travels through guest pages (scatter list), in both directions.
        Assert.NotEqual(0u, stringId);
        string text = "virtio-media proxy"[..(int)Math.Min(stringMax, 18)]; // vivid's string control holds 2–4 characters
        var setPage = new GuestAddress(32UL << 20);
        var getPage = new GuestAddress(33UL << 20);
        uint size = (uint)stringMax + 1;
        byte[] bytes = new byte[size];
        System.Text.Encoding.ASCII.GetBytes(text, bytes);
        bed.GuestMemory.WriteBytes(setPage, bytes);
        Assert.Equal(0, ExtControl(s, V4l2IoctlCode.SExtCtrls, stringId, size, setPage));
        Assert.Equal(text, HostString(direct, stringId, size));
        bed.GuestMemory.WriteBytes(getPage, new byte[size]);
        Assert.Equal(0, ExtControl(s, V4l2IoctlCode.GExtCtrls, stringId, size, getPage));
        byte[] got = new byte[size];
        bed.GuestMemory.ReadBytes(getPage, got);
        Assert.Equal(text, V4l2Text.Read(got));
    }

    [VividFact]
    public void The_host_grants_at_most_max_buffers_and_create_bufs_on_a_full_queue_is_enobufs()
    {
        string node = Node();
        using VirtioMediaTestbed bed = ProxyFromSpec($"{node},max-buffers=2");
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 180);
        var request = new V4l2RequestBuffers { Count = 8, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
        Assert.Equal(2u, request.Count);
        var create = new V4l2CreateBuffers { Count = 1, Memory = (uint)V4l2Memory.Mmap, Format = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture } };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GFmt, ref create.Format));
        Assert.Equal(Errno.ENOBUFS, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));
        request = new V4l2RequestBuffers { Count = 0, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref request));
    }

    [VividFact]
    public void A_hidden_host_control_does_not_exist_for_the_guest()
    {
        string node = Node();
        using VirtioMediaTestbed bed = ProxyFromSpec($"{node},hide=0x{V4l2Const.CidBrightness:x8}");
        using TestbedSession s = bed.OpenSession();
        var ids = new List<uint>();
        for (uint id = V4l2Const.CtrlFlagNextCtrl; ;)
        {
            var q = new V4l2QueryExtCtrl { Id = id };
            if (s.Ioctl(V4l2IoctlCode.QueryExtCtrl, ref q) != 0)
            {
                break;
            }
            ids.Add(q.Id);
            id = q.Id | V4l2Const.CtrlFlagNextCtrl;
        }
        Assert.DoesNotContain(V4l2Const.CidBrightness, ids);
        Assert.Contains(V4l2Const.CidContrast, ids);
        var direct = new V4l2QueryCtrl { Id = V4l2Const.CidBrightness };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QueryCtrl, ref direct));
        var get = new V4l2Control { Id = V4l2Const.CidBrightness };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GCtrl, ref get));
        Assert.Throws<VirtioMediaException>(() => s.SetControl(V4l2Const.CidBrightness, 1));
        s.SetControl(V4l2Const.CidContrast, 100);
        Assert.Equal(Errno.EINVAL, s.IoctlWrite(V4l2IoctlCode.SubscribeEvent,
            new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness }));
    }

    private static unsafe string Describe(in V4l2QueryExtCtrl q)
    {
        fixed (byte* n = q.Name)
        {
            return $"{q.Id:x8} type {q.Type} '{V4l2Text.Read(new ReadOnlySpan<byte>(n, 32))}' {q.Minimum}..{q.Maximum} step {q.Step} default {q.DefaultValue} flags {q.Flags:x} elems {q.Elems}x{q.ElemSize}";
        }
    }

    private static int ExtControl(TestbedSession s, V4l2IoctlCode code, uint id, uint size, GuestAddress page)
    {
        byte[] payload = new byte[32 + 20 + 16];
        MemoryMarshal.Write(payload, new V4l2ExtControls { Which = 0, Count = 1, Controls = 0x7fff_0000 });
        MemoryMarshal.Write(payload.AsSpan(32), new V4l2ExtControl { Id = id, Size = size, Value64 = 0x7fff_1000 });
        MemoryMarshal.Write(payload.AsSpan(52), new SgEntry { Start = page.Value, Length = size });
        byte[] answer = new byte[32 + 20];
        int status = s.Ioctl(code, payload, answer, out int written);
        Assert.Equal(answer.Length, written);
        // The guest's pointers come back as sent: no host address leaks through them.
        Assert.Equal(0x7fff_0000UL, MemoryMarshal.Read<V4l2ExtControls>(answer).Controls);
        Assert.Equal(0x7fff_1000L, MemoryMarshal.Read<V4l2ExtControl>(answer.AsSpan(32)).Value64);
        return status;
    }

    private static unsafe string HostString(DirectNode direct, uint id, uint size)
    {
        byte[] buffer = new byte[size];
        fixed (byte* b = buffer)
        {
            var control = new V4l2ExtControl { Id = id, Size = size, Value64 = (long)b };
            var header = new V4l2ExtControls { Count = 1, Controls = (ulong)&control };
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.GExtCtrls, ref header));
        }
        return V4l2Text.Read(buffer);
    }

    // vivid draws a text overlay with a running counter and time; with it off every frame of a still pattern is the
    // same image, so one frame read from the node directly is the reference for every proxied frame.
    private static void StillPicture(DirectNode direct)
    {
        uint osd = FindControl(direct, "OSD Text Mode");
        var c = new V4l2Control { Id = osd, Value = 2 }; // None
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.SCtrl, ref c));
    }

    internal static unsafe uint FindControl(DirectNode direct, string name)
    {
        for (uint id = V4l2Const.CtrlFlagNextCtrl; ;)
        {
            var q = new V4l2QueryExtCtrl { Id = id };
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.QueryExtCtrl, ref q));
            if (V4l2Text.Read(new ReadOnlySpan<byte>(q.Name, 32)) == name)
            {
                return q.Id;
            }
            id = q.Id | V4l2Const.CtrlFlagNextCtrl;
        }
    }

    /// <summary>vivid's smallest YUYV size with its text overlay off, and the CRC-32C of a frame read directly.</summary>
    private static (uint Width, uint Height, uint Reference) StillReference(string node)
    {
        using DirectNode direct = DirectNode.Open(node);
        StillPicture(direct);
        (uint w, uint h) = SmallestYuyvSize(direct);
        return (w, h, Reference(direct, w, h));
    }

    private static (uint Width, uint Height) SmallestYuyvSize(DirectNode direct)
    {
        var fs = new V4l2FrmSizeEnum { Index = 0, PixelFormat = FourCc.Yuyv };
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.EnumFrameSizes, ref fs));
        return (fs.Width, fs.Height);
    }

    private static uint Reference(DirectNode direct, uint width, uint height)
    {
        var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
        f.Pix.PixelFormat = FourCc.Yuyv;
        f.Pix.Width = width;
        f.Pix.Height = height;
        Assert.Equal(0, direct.Rw(V4l2IoctlCode.SFmt, ref f));
        DirectNode.SetFrameRate(direct, 30);
        return direct.CaptureOneFrameChecksum();
    }

    [VividFact]
    public void Mmap_frames_are_the_hosts_pages_with_no_copy()
    {
        string node = Node();
        (uint w, uint h, uint reference) = StillReference(node);
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, w, h);
        Assert.Equal(4, s.RequestBuffers(4, V4l2Memory.Mmap));
        // QUERYBUF ignores the memory field (v4l2-compliance leaves it 0) and answers it.
        var query = new V4l2Buffer { Index = 3, Type = (uint)V4l2BufferType.VideoCapture };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref query, [], default));
        Assert.Equal((uint)V4l2Memory.Mmap, query.Memory);
        SharedMemoryRegion region = bed.Device.SharedMemory!;
        Assert.False(region.IsBacked);
        Assert.True(region.HostMappedBytes >= 4UL * s.Buffers[0].PlaneLengths[0], "each buffer is a host mapping in region 0");
        s.QueueAllBuffers();
        s.StreamOn();
        const int frames = 300;
        uint lastSequence = 0;
        for (int i = 0; i < frames; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(FrameTimeout);
            Assert.Equal(reference, frame.Checksum());
            Assert.True(i == 0 || frame.Sequence > lastSequence, "frames arrive in the host's order");
            lastSequence = frame.Sequence;
        }
        s.StreamOff();
        HostV4l2Backend backend = Backend(bed);
        output.WriteLine($"{frames} frames of {w}x{h} YUYV, CRC-32C 0x{reference:x8} each; host-mapped {region.HostMappedBytes} bytes; " +
                         $"bytes copied {backend.BytesCopied} over {backend.FramesDelivered} frames");
        Assert.Equal(0, backend.BytesCopied);
        Assert.True(backend.FramesDelivered >= frames);
        s.RequestBuffers(0, V4l2Memory.Mmap);
        Assert.Equal(0UL, region.HostMappedBytes); // REQBUFS(0) and the guest's MUNMAPs released every mapping
    }

    /// <summary>vivid's largest YUYV size at its highest rate for that size, and the interval that gives it.</summary>
    internal static (uint Width, uint Height, V4l2Fract Interval) LargestAtHighestRate(DirectNode direct)
    {
        var largest = new V4l2FrmSizeEnum();
        for (uint i = 0; ; i++)
        {
            var fs = new V4l2FrmSizeEnum { Index = i, PixelFormat = FourCc.Yuyv };
            if (direct.Rw(V4l2IoctlCode.EnumFrameSizes, ref fs) != 0)
            {
                break;
            }
            if ((ulong)fs.Width * fs.Height > (ulong)largest.Width * largest.Height)
            {
                largest = fs;
            }
        }
        V4l2Fract best = default;
        for (uint i = 0; ; i++)
        {
            var fi = new V4l2FrmIvalEnum { Index = i, PixelFormat = FourCc.Yuyv, Width = largest.Width, Height = largest.Height };
            if (direct.Rw(V4l2IoctlCode.EnumFrameIntervals, ref fi) != 0)
            {
                break;
            }
            if (best.Denominator == 0 || (double)fi.Discrete.Numerator / fi.Discrete.Denominator < (double)best.Numerator / best.Denominator)
            {
                best = fi.Discrete;
            }
        }
        Assert.NotEqual(0u, largest.Width);
        return (largest.Width, largest.Height, best);
    }

    [VividFact]
    public unsafe void At_the_largest_size_and_highest_rate_the_proxy_keeps_the_hosts_rate_with_no_copy()
    {
        string node = Node();
        const int frames = 31;
        uint w, h;
        V4l2Fract interval;
        TimeSpan direct;
        uint sizeImage;
        using (DirectNode d = DirectNode.Open(node))
        {
            (w, h, interval) = LargestAtHighestRate(d);
            var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
            (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height) = (FourCc.Yuyv, w, h);
            Assert.Equal(0, d.Rw(V4l2IoctlCode.SFmt, ref f));
            sizeImage = f.Pix.SizeImage;
            var parm = new V4l2StreamParm { Type = (uint)V4l2BufferType.VideoCapture, TimePerFrame = interval };
            Assert.Equal(0, d.Rw(V4l2IoctlCode.SParm, ref parm));
            d.Stream(frames, out direct);
        }
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, w, h);
        s.RequestBuffers(4, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        long first = 0;
        TimeSpan proxied = TimeSpan.Zero, cpuAtFirst = TimeSpan.Zero, cpu = TimeSpan.Zero;
        for (int i = 0; i < frames; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(TimeSpan.FromSeconds(30));
            if (i == 0)
            {
                first = System.Diagnostics.Stopwatch.GetTimestamp();
                cpuAtFirst = DeviceThreadCpu();
            }
            else if (i == frames - 1)
            {
                proxied = System.Diagnostics.Stopwatch.GetElapsedTime(first);
                cpu = DeviceThreadCpu() - cpuAtFirst;
            }
        }
        s.StreamOff();
        HostV4l2Backend backend = Backend(bed);

        // The physical anchor: one copy of the same frame, in this process.
        byte[] from = new byte[sizeImage], to = new byte[sizeImage];
        from.AsSpan().CopyTo(to);
        long c0 = System.Diagnostics.Stopwatch.GetTimestamp();
        const int copies = 10;
        for (int i = 0; i < copies; i++)
        {
            from.AsSpan().CopyTo(to);
        }
        TimeSpan copy = System.Diagnostics.Stopwatch.GetElapsedTime(c0) / copies;

        double directFps = (frames - 1) / direct.TotalSeconds, proxiedFps = (frames - 1) / proxied.TotalSeconds;
        TimeSpan cpuPerFrame = cpu / (frames - 1);
        output.WriteLine($"{w}x{h} YUYV ({sizeImage} bytes) at interval {interval.Numerator}/{interval.Denominator}: direct {directFps:F2} fps, " +
                         $"proxied {proxiedFps:F2} fps, ratio {proxiedFps / directFps:F3}; device thread CPU {cpuPerFrame.TotalMicroseconds:F0} µs/frame, " +
                         $"one copy of the frame {copy.TotalMicroseconds:F0} µs, ratio {cpuPerFrame / copy:F3}; bytes copied {backend.BytesCopied} " +
                         $"over {backend.FramesDelivered} frames");
        Assert.Equal(0, backend.BytesCopied);
        // Under an emulated CPU vivid overshoots its nominal rate in bursts (catching up after stalls); the reference
        // is the direct rate, but never more than the nominal one.
        double nominal = interval.Denominator / (double)Math.Max(1u, interval.Numerator);
        double reference = Math.Min(directFps, nominal);
        Assert.True(proxiedFps >= 0.95 * reference, $"proxied {proxiedFps:F2} fps against {reference:F2} fps (direct {directFps:F2}, nominal {nominal:F2})");
    }

    // CPU time of the device's command thread (the one that runs the proxy's ioctls and dequeues), from /proc.
    private static TimeSpan DeviceThreadCpu()
    {
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            string comm = File.ReadAllText(Path.Combine(task, "comm")).Trim();
            if (comm == "virtio-media co") // "virtio-media commands", cut to the kernel's 15 characters
            {
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                long ticks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) +
                             long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
                return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ
            }
        }
        throw new InvalidOperationException("no virtio-media command thread in /proc/self/task");
    }

    [VividFact]
    public void Shared_pages_are_passed_in_place_or_through_a_counted_copy()
    {
        string node = Node();
        (uint w, uint h, uint reference) = StillReference(node);
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        V4l2Format f = s.SetFormat(FourCc.Yuyv, w, h);
        uint size = f.Pix.SizeImage;
        Assert.Equal(2, s.RequestBuffers(2, V4l2Memory.UserPtr));
        // Buffer 0: one run of guest RAM (passed in place). Buffer 1: two runs with a gap (bounce buffer).
        ulong base0 = 16UL << 20, base1 = 40UL << 20;
        uint half = size / 2 & ~0xFFFu;
        SgEntry[] inPlace = [new SgEntry { Start = base0, Length = size }];
        SgEntry[] scattered = [new SgEntry { Start = base1, Length = half }, new SgEntry { Start = base1 + half + 0x10000, Length = size - half }];
        Assert.Equal(0, s.QueueUserBuffer(0, [inPlace]));
        Assert.Equal(0, s.QueueUserBuffer(1, [scattered]));
        s.StreamOn();
        HostV4l2Backend backend = Backend(bed);
        int inPlaceFrames = 0, copiedFrames = 0;
        for (int i = 0; i < 20; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(FrameTimeout);
            frame.Requeue = false;
            SgEntry[] list = frame.Index == 0 ? inPlace : scattered;
            Assert.Equal(size, frame.Event.Buffer.BytesUsed);
            Assert.Equal(reference, Gather(bed.GuestMemory, list));
            if (frame.Index == 0)
            {
                inPlaceFrames++;
            }
            else
            {
                copiedFrames++;
            }
            Assert.Equal(0, s.QueueUserBuffer(frame.Index, [list]));
        }
        s.StreamOff();
        output.WriteLine($"USERPTR: {inPlaceFrames} frames in place, {copiedFrames} through a bounce buffer; bytes copied {backend.BytesCopied}");
        Assert.True(inPlaceFrames > 0 && copiedFrames > 0);
        Assert.Equal((long)copiedFrames * size, backend.BytesCopied);
    }

    private static uint Gather(GuestMemory memory, SgEntry[] list)
    {
        uint crc = 0xFFFFFFFF;
        foreach (SgEntry e in list)
        {
            crc = Vmm.Devices.VirtioMedia.Buffers.FrameChecksum.Crc32CUpdate(crc, memory.GetSpan(new GuestAddress(e.Start), e.Length));
        }
        return crc ^ 0xFFFFFFFF;
    }

    [VividFact]
    public void Host_control_events_reach_the_subscribed_session()
    {
        string node = Node();
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession watcher = bed.OpenSession();
        using TestbedSession changer = bed.OpenSession();
        var sub = new V4l2EventSubscription { Type = V4l2Const.EventCtrl, Id = V4l2Const.CidBrightness, Flags = V4l2Const.EventSubFlSendInitial };
        Assert.Equal(0, watcher.IoctlWrite(V4l2IoctlCode.SubscribeEvent, sub));
        EventEvent initial = ReadEvent(watcher);
        Assert.Equal(V4l2Const.EventCtrl, initial.Event.Type);
        Assert.Equal(V4l2Const.CidBrightness, initial.Event.Id);
        int next = initial.Event.CtrlValue == 100 ? 101 : 100;
        changer.SetControl(V4l2Const.CidBrightness, next);
        EventEvent changed = ReadEvent(watcher);
        Assert.Equal(next, changed.Event.CtrlValue);
        Assert.NotEqual(0u, changed.Event.CtrlChanges & V4l2Const.EventCtrlChValue);
        changer.SetControl(V4l2Const.CidBrightness, initial.Event.CtrlValue);
    }

    private static EventEvent ReadEvent(TestbedSession s)
    {
        byte[]? e = s.WaitEvent(VirtioMediaEventType.Event, FrameTimeout);
        Assert.NotNull(e);
        return MemoryMarshal.Read<EventEvent>(e);
    }

    [VividFact]
    public void A_fatal_host_streaming_error_fails_only_that_session()
    {
        string node = Node();
        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        using TestbedSession bystander = bed.OpenSession();
        uint w, h, inject;
        using (DirectNode direct = DirectNode.Open(node))
        {
            (w, h) = SmallestYuyvSize(direct);
            inject = FindControl(direct, "Inject Fatal Streaming Error");
        }
        s.SetFormat(FourCc.Yuyv, w, h);
        s.RequestBuffers(3, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        s.DequeueFrame(FrameTimeout).Dispose();
        // vivid's button marks the vb2 queue as failed: poll reports EPOLLERR and DQBUF answers EIO.
        bystander.SetControl(inject, 1);
        byte[]? error = s.WaitEvent(VirtioMediaEventType.Error, FrameTimeout);
        Assert.NotNull(error);
        Assert.Equal((uint)Errno.EIO, MemoryMarshal.Read<EventError>(error).Errno);
        var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
        Assert.Equal(0, bystander.Ioctl(V4l2IoctlCode.GFmt, ref f)); // the other session, on the same host node, is fine
        Assert.Null(bed.NeedsResetReason);
    }

    [VividFact]
    public void A_host_device_that_stalls_gives_an_error_event()
    {
        string node = Node();
        uint w, h;
        using (DirectNode direct = DirectNode.Open(node))
        {
            (w, h) = SmallestYuyvSize(direct);
            // vivid at 1 frame per second stands in for a stalled device against a 0.3 s watchdog.
            var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
            (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height) = (FourCc.Yuyv, w, h);
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.SFmt, ref f));
            Assert.True(DirectNode.SetFrameRate(direct, 1) <= 1.0);
        }
        using VirtioMediaTestbed bed = ProxyFromSpec($"{node},stall=0.3");
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, w, h);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        byte[]? e = s.WaitEvent(VirtioMediaEventType.Error, FrameTimeout);
        Assert.NotNull(e);
        Assert.Equal((uint)Errno.ETIMEDOUT, MemoryMarshal.Read<EventError>(e).Errno);
        Assert.Null(bed.NeedsResetReason);
        using (DirectNode direct = DirectNode.Open(node))
        {
            DirectNode.SetFrameRate(direct, 30);
        }
    }

    [VividFact]
    public void Unplug_while_streaming_gives_an_error_event_and_the_rest_keeps_running()
    {
        string node = Node();
        string[] devices = Directory.GetDirectories(Vivid.SysfsDriver, "vivid.*").Select(Path.GetFileName).ToArray()!;
        Assert.NotEmpty(devices);
        using VirtioMediaTestbed camera = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 320, Height = 240, Fps = 60 });
        using TestbedSession other = camera.OpenSession();
        other.SetFormat(FourCc.Yuyv, 320, 240);
        other.RequestBuffers(3, V4l2Memory.Mmap);
        other.QueueAllBuffers();
        other.StreamOn();

        using VirtioMediaTestbed bed = Proxy(node);
        using TestbedSession s = bed.OpenSession();
        uint w, h;
        using (DirectNode direct = DirectNode.Open(node))
        {
            (w, h) = SmallestYuyvSize(direct);
        }
        s.SetFormat(FourCc.Yuyv, w, h);
        s.RequestBuffers(3, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        s.DequeueFrame(FrameTimeout).Dispose();
        try
        {
            File.WriteAllText(Path.Combine(Vivid.SysfsDriver, "unbind"), devices[0]);
            byte[]? error = s.WaitEvent(VirtioMediaEventType.Error, FrameTimeout);
            Assert.NotNull(error);
            EventError e = MemoryMarshal.Read<EventError>(error);
            output.WriteLine($"after unbind: ERROR event errno {e.Errno}");
            Assert.Equal((uint)Errno.ENODEV, e.Errno);
            // The failed session answers EIO from now on; the device, and another device, keep working.
            var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
            Assert.Equal(Errno.EIO, s.Ioctl(V4l2IoctlCode.GFmt, ref f));
            Assert.Null(bed.NeedsResetReason);
            for (int i = 0; i < 10; i++)
            {
                other.DequeueFrame(FrameTimeout).Dispose();
            }
            Assert.Throws<VirtioMediaException>(() => bed.OpenSession()); // the node is gone: OPEN gets the host's errno
        }
        finally
        {
            File.WriteAllText(Path.Combine(Vivid.SysfsDriver, "bind"), devices[0]);
            for (int i = 0; i < 100 && Vivid.FindCaptureNode() is null; i++)
            {
                Thread.Sleep(100);
            }
        }
        Assert.NotNull(Vivid.FindCaptureNode());
    }
}
