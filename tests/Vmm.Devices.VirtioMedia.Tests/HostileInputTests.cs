using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>Bad values in every field: the device answers with an errno and keeps working.</summary>
public class HostileInputTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    // After each abuse the device must still stream correct frames on a fresh session.
    private static void AssertHealthy(VirtioMediaTestbed bed, TestbedSession? previous = null)
    {
        previous?.Dispose(); // it may own the buffers (only one session may)
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240, multiPlanar: bed.ReadConfig().DeviceCaps == (V4l2Const.CapVideoCaptureMplane | V4l2Const.CapStreaming));
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        using TestbedFrame f = s.DequeueFrame(Timeout);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, f.Sequence, TestPatternControls.Default), f.Checksum());
    }

    private static uint StatusOf(ReadOnlySpan<byte> response) => MemoryMarshal.Read<RespHeader>(response).Status;

    [Fact]
    public void MalformedCommandsGetErrnos()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        byte[] resp = new byte[64];
        Assert.Equal(8, bed.SendCommand(new byte[3], resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        Assert.Equal(8, bed.SendCommand([9, 0, 0, 0, 0, 0, 0, 0], resp));
        Assert.Equal((uint)Errno.ENOTTY, StatusOf(resp));
        Assert.Equal(8, bed.SendCommand([0, 0, 0, 0, 0, 0, 0, 0], resp));
        Assert.Equal((uint)Errno.ENOTTY, StatusOf(resp));
        // OPEN with no room for the 16-byte answer.
        Assert.Equal(8, bed.SendCommand([1, 0, 0, 0, 0, 0, 0, 0], resp.AsSpan(0, 12)));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        // No writable part at all: nothing written, nothing thrown.
        Assert.Equal(0, bed.SendCommand([3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0], Span<byte>.Empty));
        // Truncated IOCTL / MMAP / MUNMAP / CLOSE headers.
        Assert.Equal(8, bed.SendCommand([3, 0, 0, 0, 0, 0, 0, 0, 0, 0], resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        Assert.Equal(8, bed.SendCommand([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        Assert.Equal(8, bed.SendCommand([5, 0, 0, 0, 0, 0, 0, 0, 1], resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        Assert.Equal(0, bed.SendCommand([2, 0, 0, 0, 0, 0, 0, 0], resp));
        // Unknown sessions: IOCTL and MMAP EINVAL, CLOSE ignored, MUNMAP of an unknown address EINVAL.
        byte[] ioctl = new byte[16 + 208];
        MemoryMarshal.Write(ioctl, new CmdIoctl { Header = new CmdHeader { Cmd = 3 }, SessionId = 999, Code = 4 });
        Assert.Equal(8, bed.SendCommand(ioctl, new byte[8 + 208]));
        byte[] mmap = new byte[20];
        MemoryMarshal.Write(mmap, new CmdMmap { Header = new CmdHeader { Cmd = 4 }, SessionId = 999 });
        Assert.Equal(8, bed.SendCommand(mmap, resp.AsSpan(0, 24)));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        byte[] close = new byte[16];
        MemoryMarshal.Write(close, new CmdClose { Header = new CmdHeader { Cmd = 2 }, SessionId = 12345 });
        Assert.Equal(0, bed.SendCommand(close, Span<byte>.Empty));
        byte[] munmap = new byte[16];
        MemoryMarshal.Write(munmap, new CmdMunmap { Header = new CmdHeader { Cmd = 5 }, DriverAddr = ulong.MaxValue });
        Assert.Equal(8, bed.SendCommand(munmap, resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        AssertHealthy(bed);
    }

    [Fact]
    public void MmapWithUnknownFlagsOrOffsetsIsRefused()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(1, V4l2Memory.Mmap);
        ulong addr = s.Buffers[0].MappedAddresses[0];
        byte[] mmap = new byte[20];
        MemoryMarshal.Write(mmap, new CmdMmap { Header = new CmdHeader { Cmd = 4 }, SessionId = s.Id, Flags = 0x80, Offset = (uint)addr });
        byte[] resp = new byte[24];
        Assert.Equal(8, bed.SendCommand(mmap, resp));
        Assert.Equal((uint)Errno.EINVAL, StatusOf(resp));
        foreach (uint offset in new uint[] { (uint)addr + 1, (uint)addr + 4096, 0xFFFF_F000, uint.MaxValue })
        {
            Assert.Equal(Errno.EINVAL, s.TryMmap(offset, false, out _, out _));
        }
        AssertHealthy(bed, s);
    }

    [Fact]
    public void TruncatedPayloadsOfEveryIoctlAreEinval()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession s = bed.OpenSession();
        (V4l2IoctlCode Code, int Size)[] ioctls =
        [
            (V4l2IoctlCode.EnumFmt, 64), (V4l2IoctlCode.GFmt, 208), (V4l2IoctlCode.SFmt, 208), (V4l2IoctlCode.TryFmt, 208),
            (V4l2IoctlCode.ReqBufs, 20), (V4l2IoctlCode.QueryBuf, 88), (V4l2IoctlCode.QBuf, 88), (V4l2IoctlCode.PrepareBuf, 88),
            (V4l2IoctlCode.StreamOn, 4), (V4l2IoctlCode.StreamOff, 4), (V4l2IoctlCode.GParm, 204), (V4l2IoctlCode.SParm, 204),
            (V4l2IoctlCode.EnumInput, 80), (V4l2IoctlCode.SInput, 4), (V4l2IoctlCode.GCtrl, 8), (V4l2IoctlCode.SCtrl, 8),
            (V4l2IoctlCode.QueryCtrl, 68), (V4l2IoctlCode.QueryMenu, 44), (V4l2IoctlCode.GExtCtrls, 32), (V4l2IoctlCode.SExtCtrls, 32),
            (V4l2IoctlCode.TryExtCtrls, 32), (V4l2IoctlCode.EnumFrameSizes, 44), (V4l2IoctlCode.EnumFrameIntervals, 52),
            (V4l2IoctlCode.SubscribeEvent, 32), (V4l2IoctlCode.UnsubscribeEvent, 32), (V4l2IoctlCode.CreateBufs, 256),
            (V4l2IoctlCode.GSelection, 64), (V4l2IoctlCode.SSelection, 64), (V4l2IoctlCode.QueryExtCtrl, 232), (V4l2IoctlCode.ExpBuf, 64),
        ];
        byte[] output = new byte[1024];
        foreach ((V4l2IoctlCode code, int size) in ioctls)
        {
            Assert.Equal(Errno.EINVAL, s.Ioctl(code, new byte[size - 1], output, out int written));
            Assert.Equal(0, written);
            // Full input but no room for the answer: also refused, never a partial write.
            if (code is not (V4l2IoctlCode.StreamOn or V4l2IoctlCode.StreamOff or V4l2IoctlCode.SubscribeEvent or V4l2IoctlCode.UnsubscribeEvent
                or V4l2IoctlCode.ExpBuf or V4l2IoctlCode.GExtCtrls or V4l2IoctlCode.SExtCtrls or V4l2IoctlCode.TryExtCtrls))
            {
                Assert.Equal(Errno.EINVAL, s.Ioctl(code, new byte[size], output.AsSpan(0, size - 1), out written));
            }
        }
        AssertHealthy(bed, s);
    }

    [Fact]
    public void BadFieldsInBufferIoctls()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed(mplane: true);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12M, 320, 240, multiPlanar: true);
        Span<V4l2Plane> planes = stackalloc V4l2Plane[8];
        // Before REQBUFS every buffer ioctl fails.
        var b = new V4l2Buffer { Index = 0, Type = 9, Memory = 1, Length = 2 };
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default));
        Assert.Equal(Errno.EINVAL, s.IoctlWrite(V4l2IoctlCode.StreamOn, 9u));

        var r = new V4l2RequestBuffers { Count = 2, Type = 2, Memory = 1 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r)); // output type
        r = new V4l2RequestBuffers { Count = 2, Type = 9, Memory = 4 };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r)); // DMABUF
        r = new V4l2RequestBuffers { Count = 2, Type = 9, Memory = 0xFFFF };
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        r = new V4l2RequestBuffers { Count = uint.MaxValue, Type = 9, Memory = 1 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        Assert.Equal(32u, r.Count); // clamped to VIDEO_MAX_FRAME
        r = new V4l2RequestBuffers { Count = 2, Type = 9, Memory = 1 };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.ReqBufs, ref r));

        (uint Index, uint Type, uint Memory, uint Length)[] bad =
        [
            (2, 9, 1, 2), (uint.MaxValue, 9, 1, 2), (0, 1, 1, 2), (0, 77, 1, 2), (0, 9, 2, 2), (0, 9, 1, 9), (0, 9, 1, 1),
        ];
        foreach ((uint index, uint type, uint memory, uint length) in bad)
        {
            foreach (V4l2IoctlCode code in new[] { V4l2IoctlCode.QueryBuf, V4l2IoctlCode.QBuf, V4l2IoctlCode.PrepareBuf })
            {
                if (code == V4l2IoctlCode.QueryBuf && memory != 1 && length <= 8)
                {
                    continue; // QUERYBUF ignores the memory field
                }
                b = new V4l2Buffer { Index = index, Type = type, Memory = memory, Length = length };
                int status = s.BufferIoctl(code, ref b, planes, default);
                Assert.True(status == Errno.EINVAL, $"{code} index={index} type={type} memory={memory} length={length}: {status}");
            }
        }
        // Planes count beyond 8 is rejected before reading plane data (the payload holds none).
        byte[] huge = new byte[88];
        MemoryMarshal.Write(huge, new V4l2Buffer { Index = 0, Type = 9, Memory = 1, Length = 1000 });
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QBuf, huge, new byte[1024], out _));
        // Planes count that the payload does not contain.
        MemoryMarshal.Write(huge, new V4l2Buffer { Index = 0, Type = 9, Memory = 1, Length = 2 });
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.QBuf, huge, new byte[1024], out _));
        Assert.Equal(Errno.EINVAL, s.IoctlWrite(V4l2IoctlCode.StreamOn, 1u));
        Assert.Equal(Errno.EINVAL, s.IoctlWrite(V4l2IoctlCode.StreamOff, 10u));
        AssertHealthy(bed, s);
    }

    [Fact]
    public void BadScatterListsAreRefused()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        Assert.Equal(2, s.RequestBuffers(2, V4l2Memory.UserPtr));
        const uint size = 320 * 240 * 2;
        ulong ramEnd = bed.GuestMemory.TotalSize;
        // Outside guest RAM, straddling its end, wrapping around 2^64: EFAULT.
        Assert.Equal(Errno.EFAULT, s.QueueUserBuffer(0, [[new SgEntry { Start = ramEnd, Length = size }]]));
        Assert.Equal(Errno.EFAULT, s.QueueUserBuffer(0, [[new SgEntry { Start = ramEnd - 4096, Length = size }]]));
        Assert.Equal(Errno.EFAULT, s.QueueUserBuffer(0, [[new SgEntry { Start = ulong.MaxValue - 100, Length = size }]]));
        // Too small for the format: EINVAL.
        Assert.Equal(Errno.EINVAL, s.QueueUserBuffer(0, [[new SgEntry { Start = 0x10000, Length = size - 1 }]]));
        // Zero-length segment, or lengths not adding up to the buffer length (the list runs out): EINVAL.
        var b = new V4l2Buffer { Index = 0, Type = 1, Memory = 2, Length = size };
        SgEntry[] zero = [new SgEntry { Start = 0x10000, Length = 0 }];
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, default, zero));
        b = new V4l2Buffer { Index = 0, Type = 1, Memory = 2, Length = size };
        SgEntry[] tooShort = [new SgEntry { Start = 0x10000, Length = 4096 }];
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, default, tooShort));
        b = new V4l2Buffer { Index = 0, Type = 1, Memory = 2, Length = size };
        SgEntry[] overshoot = [new SgEntry { Start = 0x10000, Length = size - 10 }, new SgEntry { Start = 0x200000, Length = 4096 }];
        Assert.Equal(Errno.EINVAL, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, default, overshoot));
        // A good list works, and the user pointer comes back unchanged.
        b = new V4l2Buffer { Index = 1, Type = 1, Memory = 2, Length = size, M = 0x7f12_3456_7000 };
        Assert.Equal(0, s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, default, [new SgEntry { Start = 0x10000, Length = size }]));
        Assert.Equal(0x7f12_3456_7000ul, b.M);
        s.StreamOn();
        byte[] e = s.WaitEvent(VirtioMediaEventType.Dqbuf, Timeout)!;
        Assert.Equal(1u, MemoryMarshal.Read<EventDqbuf>(e).Buffer.Index);
        byte[] frame = new byte[size];
        bed.GuestMemory.ReadBytes(new(0x10000), frame);
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, 0, TestPatternControls.Default), TestPatternImage.Checksum(frame));
        s.StreamOff();
        AssertHealthy(bed, s);
    }

    [Fact]
    public void ExtControlCountsBeyondThePayloadOrLimitAreEinval()
    {
        using VirtioMediaTestbed bed = TestbedStreamingTests.NewBed();
        using TestbedSession s = bed.OpenSession();
        byte[] payload = new byte[32 + 20];
        MemoryMarshal.Write(payload, new V4l2ExtControls { Count = 2 }); // claims 2, carries 1
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.GExtCtrls, payload, new byte[128], out _));
        MemoryMarshal.Write(payload, new V4l2ExtControls { Count = uint.MaxValue });
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.SExtCtrls, payload, new byte[128], out _));
        MemoryMarshal.Write(payload, new V4l2ExtControls { Count = 1 });
        Assert.Equal(Errno.EINVAL, s.Ioctl(V4l2IoctlCode.SExtCtrls, payload, new byte[40], out _)); // no room for the array
        AssertHealthy(bed, s);
    }

    // ---- broken backends ----

    private sealed class BrokenBackend(Func<IMediaSessionHost, MediaBackendSession> factory) : IMediaBackend
    {
        public uint DeviceCaps => V4l2Const.CapVideoCapture | V4l2Const.CapStreaming;
        public string Card => "broken";

        public int Open(IMediaSessionHost host, out MediaBackendSession? session)
        {
            session = factory(host);
            return 0;
        }

        public void Dispose()
        {
        }
    }

    private sealed class StallingSession(ManualResetEventSlim release, ManualResetEventSlim entered) : MediaBackendSession
    {
        public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer)
        {
            buffer = null;
            return Errno.EINVAL;
        }

        public override long NextFrameDeadline => release.IsSet ? long.MaxValue : 0;

        public override void ProduceFrames(long now)
        {
            entered.Set();
            release.Wait(TimeSpan.FromSeconds(30)); // a backend stuck in "hardware"
        }

        public override int GetInput(out uint index)
        {
            index = 0;
            return 0;
        }

        public override void Dispose()
        {
        }
    }

    private sealed class ThrowingSession : MediaBackendSession
    {
        public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer) => throw new InvalidOperationException("boom");
        public override long NextFrameDeadline => 0;
        public override void ProduceFrames(long now) => throw new InvalidOperationException("frame source died");
        public override int GetFormat(ref V4l2Format format) => throw new InvalidOperationException("boom");
        public override void Dispose()
        {
        }
    }

    [Fact]
    public void StalledBackendDoesNotDelayCommands()
    {
        using var release = new ManualResetEventSlim(false);
        using var entered = new ManualResetEventSlim(false);
        var device = new VirtioMediaDevice(new BrokenBackend(_ => new StallingSession(release, entered)), 1UL << 20);
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(device);
        using TestbedSession s = bed.OpenSession();
        Assert.True(entered.Wait(Timeout), "frame clock never called the backend");
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 100; i++)
        {
            uint input = 5;
            Assert.Equal(0, s.Ioctl(V4l2IoctlCode.GInput, ref input));
        }
        using TestbedSession other = bed.OpenSession();
        other.Dispose();
        Assert.True(sw.ElapsedMilliseconds < 2000, $"commands took {sw.ElapsedMilliseconds} ms while the backend stalled");
        release.Set();
    }

    [Fact]
    public void ThrowingBackendGivesErrnoAndErrorEvent()
    {
        var device = new VirtioMediaDevice(new BrokenBackend(_ => new ThrowingSession()), 1UL << 20);
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(device);
        using TestbedSession s = bed.OpenSession();
        byte[]? e = s.WaitEvent(VirtioMediaEventType.Error, Timeout);
        Assert.NotNull(e);
        EventError err = MemoryMarshal.Read<EventError>(e);
        Assert.Equal((uint)Errno.EIO, err.Errno);
        Assert.Equal(VirtioMediaWire.EventErrorSize, e!.Length);
        // The errored session fails its commands until CLOSE; a new session gets a new id.
        var f = new V4l2Format { Type = 1 };
        Assert.Equal(Errno.EIO, s.Ioctl(V4l2IoctlCode.GFmt, ref f));
        using TestbedSession t = bed.OpenSession();
        Assert.NotEqual(s.Id, t.Id);
    }

    [Fact]
    public void BackendExceptionInAnIoctlIsEio()
    {
        using var release = new ManualResetEventSlim(true);
        using var entered = new ManualResetEventSlim(false);
        var device = new VirtioMediaDevice(new BrokenBackend(_ => new ThrowingIoctlSession()), 1UL << 20);
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(device);
        using TestbedSession s = bed.OpenSession();
        var f = new V4l2Format { Type = 1 };
        Assert.Equal(Errno.EIO, s.Ioctl(V4l2IoctlCode.GFmt, ref f));
        Assert.Equal(Errno.EIO, s.TryMmap(0, false, out _, out _));
        uint input = 0;
        Assert.Equal(Errno.ENOTTY, s.Ioctl(V4l2IoctlCode.GInput, ref input)); // session still alive
    }

    private sealed class ThrowingIoctlSession : MediaBackendSession
    {
        public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer) => throw new InvalidOperationException("boom");
        public override int GetFormat(ref V4l2Format format) => throw new InvalidOperationException("boom");
        public override void Dispose()
        {
        }
    }
}
