using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Testing.VirtioMedia;

/// <summary>A memory-to-memory application (a decoder's client) on a testbed session: both queues of the multi-planar
/// API, MMAP or SHARED_PAGES buffers, DECODER_CMD and V4L2 events. Failures of calls that must succeed throw
/// <see cref="VirtioMediaException"/>; the <c>Try…</c> calls return the errno.</summary>
public sealed class TestbedM2mSession : IDisposable
{
    /// <summary>How long <see cref="Dequeue"/> and <see cref="WaitV4l2Event"/> wait.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    private const uint OutputType = (uint)V4l2BufferType.VideoOutputMplane, CaptureType = (uint)V4l2BufferType.VideoCaptureMplane;

    private readonly VirtioMediaTestbed _bed;
    private readonly TestbedSession _s;
    private readonly List<ulong> _outputAddresses = [], _captureAddresses = [];
    private uint _captureLength;

    public TestbedM2mSession(VirtioMediaTestbed bed)
    {
        _bed = bed;
        _s = bed.OpenSession();
    }

    public uint OutputLength { get; private set; }

    /// <summary>The underlying session (raw ioctls, events).</summary>
    public TestbedSession Session => _s;

    public void Subscribe(uint type) =>
        Check(_s.IoctlWrite(V4l2IoctlCode.SubscribeEvent, new V4l2EventSubscription { Type = type }));

    public V4l2Format GetFormat(uint type)
    {
        var f = new V4l2Format { Type = type };
        Check(_s.Ioctl(V4l2IoctlCode.GFmt, ref f));
        return f;
    }

    public int TrySetFormat(uint type, uint fourcc, uint width, uint height)
    {
        var f = new V4l2Format { Type = type };
        f.PixMp.PixelFormat = fourcc;
        f.PixMp.Width = width;
        f.PixMp.Height = height;
        return _s.Ioctl(V4l2IoctlCode.SFmt, ref f);
    }

    public V4l2Format SetFormat(uint type, uint fourcc, uint width, uint height)
    {
        Check(TrySetFormat(type, fourcc, width, height));
        return GetFormat(type);
    }

    public (uint Width, uint Height) Compose()
    {
        var sel = new V4l2Selection { Type = (uint)V4l2BufferType.VideoCapture, Target = V4l2Const.SelTgtCompose };
        Check(_s.Ioctl(V4l2IoctlCode.GSelection, ref sel));
        return (sel.Rect.Width, sel.Rect.Height);
    }

    public void RequestBuffers(uint type, uint count, V4l2Memory memory = V4l2Memory.Mmap)
    {
        var r = new V4l2RequestBuffers { Count = count, Type = type, Memory = (uint)memory };
        Check(_s.Ioctl(V4l2IoctlCode.ReqBufs, ref r));
        List<ulong> addresses = type == OutputType ? _outputAddresses : _captureAddresses;
        addresses.Clear();
        Span<V4l2Plane> planes = stackalloc V4l2Plane[1];
        for (uint i = 0; i < r.Count; i++)
        {
            var b = new V4l2Buffer { Index = i, Type = type, Memory = (uint)memory, Length = 1 };
            Check(_s.BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default));
            if (type == OutputType)
            {
                OutputLength = planes[0].Length;
            }
            else
            {
                _captureLength = planes[0].Length;
            }
            if (memory == V4l2Memory.Mmap)
            {
                addresses.Add(_s.Mmap((uint)planes[0].M, writable: type == OutputType).DriverAddr);
            }
        }
    }

    // Formats set from the stream's size, buffers on both queues, both streaming: a decoder ready for frames.
    public void StartStreaming(uint width, uint height, uint outputs, uint captures)
    {
        SetFormat(OutputType, FourCc.Jpeg, width, height);
        RequestBuffers(OutputType, outputs);
        RequestBuffers(CaptureType, captures);
        StreamOn(OutputType);
        StreamOn(CaptureType);
    }

    public void StreamOn(uint type) => Check(_s.IoctlWrite(V4l2IoctlCode.StreamOn, type));

    public void StreamOff(uint type) => Check(_s.IoctlWrite(V4l2IoctlCode.StreamOff, type));

    public void QueueOutput(int index, ReadOnlySpan<byte> coded, long sec, long usec)
    {
        coded.CopyTo(_bed.Device.SharedMemory!.GetSpan(_outputAddresses[index], (int)OutputLength));
        Check(TryQueueOutput(index, (uint)coded.Length, 0, sec, usec));
    }

    public V4l2Buffer QueueOutputWith(int index, ReadOnlySpan<byte> coded, long sec, long usec, uint flags, V4l2Timecode timecode)
    {
        coded.CopyTo(_bed.Device.SharedMemory!.GetSpan(_outputAddresses[index], (int)OutputLength));
        var b = new V4l2Buffer { Index = (uint)index, Type = OutputType, Memory = (uint)V4l2Memory.Mmap, Length = 1, TimestampSec = sec,
            TimestampUsec = usec, Flags = flags, Timecode = timecode };
        Span<V4l2Plane> planes = [new V4l2Plane { BytesUsed = (uint)coded.Length, Length = OutputLength }];
        Check(_s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default));
        return b;
    }

    // The planes' bytesused/data_offset as given (the plane struct's own, as v4l2-compliance sets them).
    public int TryOutputIoctl(V4l2IoctlCode code, uint bytesUsed, uint dataOffset, out V4l2Buffer reply, long timestampSec = 0)
    {
        reply = new V4l2Buffer { Index = 0, Type = OutputType, Memory = (uint)V4l2Memory.Mmap, Length = 1, TimestampSec = timestampSec };
        Span<V4l2Plane> planes = [new V4l2Plane { BytesUsed = bytesUsed, Length = OutputLength, DataOffset = dataOffset }];
        int status = _s.BufferIoctl(code, ref reply, planes, default);
        reply.BytesUsed = planes[0].BytesUsed;
        return status;
    }

    public int TryQueueOutput(int index, uint bytesUsed, uint dataOffset, long sec = 0, long timestampUsec = 0)
    {
        var b = new V4l2Buffer { Index = (uint)index, Type = OutputType, Memory = (uint)V4l2Memory.Mmap, Length = 1, TimestampSec = sec, TimestampUsec = timestampUsec };
        Span<V4l2Plane> planes = [new V4l2Plane { BytesUsed = bytesUsed, Length = OutputLength, DataOffset = dataOffset }];
        return _s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default);
    }

    public void QueueCapture(int index)
    {
        var b = new V4l2Buffer { Index = (uint)index, Type = CaptureType, Memory = (uint)V4l2Memory.Mmap, Length = 1 };
        Span<V4l2Plane> planes = [new V4l2Plane { Length = _captureLength }];
        Check(_s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default));
    }

    public int QueueShared(uint type, SgEntry[] pages, uint bytesUsed, long sec)
    {
        uint length = 0;
        foreach (SgEntry e in pages)
        {
            length += e.Length;
        }
        var b = new V4l2Buffer { Index = 0, Type = type, Memory = (uint)V4l2Memory.UserPtr, Length = 1, TimestampSec = sec };
        Span<V4l2Plane> planes = [new V4l2Plane { BytesUsed = bytesUsed, Length = length, M = 0x7f0000000000 }];
        return _s.BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, pages);
    }

    public int DecoderCmd(uint cmd) => Command(V4l2IoctlCode.DecoderCmd, cmd);

    public int TryDecoderCmd(uint cmd) => Command(V4l2IoctlCode.TryDecoderCmd, cmd);

    private int Command(V4l2IoctlCode code, uint cmd)
    {
        byte[] payload = new byte[72];
        BitConverter.TryWriteBytes(payload, cmd);
        BitConverter.TryWriteBytes(payload.AsSpan(4), 0xFFu); // flags: the answer clears what is not honoured
        byte[] answer = new byte[72];
        int status = _s.Ioctl(code, payload, answer, out int written);
        if (status == 0 && (written != 72 || BitConverter.ToUInt32(answer, 4) != 0))
        {
            throw new VirtioMediaException(Errno.EINVAL, "a decoder command's answer must be 72 bytes with the flags it did not honour cleared");
        }
        return status;
    }

    public EventDqbuf Dequeue(uint type) =>
        TryDequeue(type, DefaultTimeout) ?? throw new TimeoutException($"no DQBUF of type {type} within {DefaultTimeout}");

    public EventDqbuf? TryDequeue(uint type, TimeSpan timeout)
    {
        byte[]? e = _s.WaitEvent(e => MemoryMarshal.Read<EventHeader>(e).Event == (uint)VirtioMediaEventType.Dqbuf
            && MemoryMarshal.Read<EventDqbuf>(e).Buffer.Type == type, timeout);
        return e is null ? null : MemoryMarshal.Read<EventDqbuf>(e);
    }

    public V4l2Event WaitV4l2Event() => TryWaitV4l2Event(DefaultTimeout) ?? throw new TimeoutException("no V4L2 event");

    public V4l2Event? TryWaitV4l2Event(TimeSpan timeout)
    {
        byte[]? e = _s.WaitEvent(VirtioMediaEventType.Event, timeout);
        return e is null ? null : MemoryMarshal.Read<EventEvent>(e).Event;
    }

    public Span<byte> CapturePlane(int index) => _bed.Device.SharedMemory!.GetSpan(_captureAddresses[index], (int)_captureLength);

    private static void Check(int status)
    {
        if (status != 0)
        {
            throw new VirtioMediaException(status, "memory-to-memory ioctl");
        }
    }

    public void Dispose() => _s.Dispose();
}
