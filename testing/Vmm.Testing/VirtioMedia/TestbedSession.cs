using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Device;

namespace Vmm.Testing.VirtioMedia;

/// <summary>
/// One open session driven like the Linux driver would: ioctls with the exact payload layouts, MMAP of every plane,
/// DQBUF taken from events. Typed helpers throw <see cref="VirtioMediaException"/>; <see cref="Ioctl"/> gives raw
/// access (errno back) for protocol and bad-input tests.
/// </summary>
public sealed class TestbedSession : IDisposable
{
    private readonly VirtioMediaTestbed _bed;
    private bool _closed;
    private readonly List<TestbedBuffer> _buffers = [];

    internal TestbedSession(VirtioMediaTestbed bed, uint id)
    {
        _bed = bed;
        Id = id;
    }

    public uint Id { get; }

    /// <summary>Buffer type used for buffers and streaming (set by <see cref="SetFormat"/>).</summary>
    public V4l2BufferType BufferType { get; private set; } = V4l2BufferType.VideoCapture;

    public V4l2Memory Memory { get; private set; } = V4l2Memory.Mmap;

    /// <summary>The format last set.</summary>
    public V4l2Format Format { get; private set; }

    public IReadOnlyList<TestbedBuffer> Buffers => _buffers;

    /// <summary>Raw ioctl: returns the errno; <paramref name="written"/> = payload bytes the device wrote.</summary>
    public int Ioctl(V4l2IoctlCode code, ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        lock (_bed.CommandLock)
        {
            byte[] request = new byte[VirtioMediaWire.CmdIoctlSize + input.Length];
            MemoryMarshal.Write(request, new CmdIoctl { Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Ioctl }, SessionId = Id, Code = (uint)code });
            input.CopyTo(request.AsSpan(VirtioMediaWire.CmdIoctlSize));
            Span<byte> response = _bed.ResponseBuffer.AsSpan(0, Math.Min(_bed.ResponseBuffer.Length, VirtioMediaWire.RespHeaderSize + output.Length));
            int used = _bed.SendCommand(request, response);
            written = 0;
            if (used < VirtioMediaWire.RespHeaderSize)
            {
                return Errno.EINVAL; // what the Linux driver reports for a short answer
            }
            RespHeader h = MemoryMarshal.Read<RespHeader>(response);
            written = used - VirtioMediaWire.RespHeaderSize;
            response.Slice(VirtioMediaWire.RespHeaderSize, written).CopyTo(output);
            return (int)h.Status;
        }
    }

    /// <summary>Typed read-write ioctl: sends <paramref name="value"/>, replaces it with the answer on success.
    /// Returns the errno; a successful answer shorter than the structure is reported as EINVAL (driver check).</summary>
    public int Ioctl<T>(V4l2IoctlCode code, ref T value) where T : unmanaged
    {
        Span<byte> input = MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1)).ToArray();
        Span<byte> output = stackalloc byte[Unsafe.SizeOf<T>()];
        int status = Ioctl(code, input, output, out int written);
        if (status == 0)
        {
            if (written < Unsafe.SizeOf<T>())
            {
                return Errno.EINVAL;
            }
            value = MemoryMarshal.Read<T>(output);
        }
        return status;
    }

    /// <summary>Write-only ioctl (STREAMON, SUBSCRIBE_EVENT, …).</summary>
    public int IoctlWrite<T>(V4l2IoctlCode code, T value) where T : unmanaged =>
        Ioctl(code, MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1)), Span<byte>.Empty, out _);

    private static void Check(int status, string what)
    {
        if (status != 0)
        {
            throw new VirtioMediaException(status, what);
        }
    }

    /// <summary>S_FMT with the given format; multi-planar API when <paramref name="multiPlanar"/>.</summary>
    public V4l2Format SetFormat(uint fourcc, uint width, uint height, bool multiPlanar = false)
    {
        var f = new V4l2Format { Type = (uint)(multiPlanar ? V4l2BufferType.VideoCaptureMplane : V4l2BufferType.VideoCapture) };
        if (multiPlanar)
        {
            f.PixMp.PixelFormat = fourcc;
            f.PixMp.Width = width;
            f.PixMp.Height = height;
        }
        else
        {
            f.Pix.PixelFormat = fourcc;
            f.Pix.Width = width;
            f.Pix.Height = height;
        }
        Check(Ioctl(V4l2IoctlCode.SFmt, ref f), "S_FMT");
        BufferType = (V4l2BufferType)f.Type;
        Format = f;
        return f;
    }

    /// <summary>S_PARM with 1/<paramref name="fps"/>; returns the frame rate the device chose.</summary>
    public uint SetFrameRate(uint fps)
    {
        var p = new V4l2StreamParm { Type = (uint)BufferType, TimePerFrame = new V4l2Fract(1, fps) };
        Check(Ioctl(V4l2IoctlCode.SParm, ref p), "S_PARM");
        return p.TimePerFrame.Denominator / Math.Max(1, p.TimePerFrame.Numerator);
    }

    /// <summary>Sets a control through S_EXT_CTRLS (what guests ≥ 6.15 send).</summary>
    public void SetControl(uint id, int value)
    {
        byte[] payload = new byte[32 + 20];
        MemoryMarshal.Write(payload, new V4l2ExtControls { Which = 0, Count = 1 });
        MemoryMarshal.Write(payload.AsSpan(32), new V4l2ExtControl { Id = id, Value = value });
        byte[] output = new byte[payload.Length];
        Check(Ioctl(V4l2IoctlCode.SExtCtrls, payload, output, out _), "S_EXT_CTRLS");
    }

    /// <summary>REQBUFS, then QUERYBUF and (for MMAP) CMD_MMAP of every plane. Returns the number of buffers.</summary>
    public int RequestBuffers(uint count, V4l2Memory memory)
    {
        UnmapAll();
        var r = new V4l2RequestBuffers { Count = count, Type = (uint)BufferType, Memory = (uint)memory };
        Check(Ioctl(V4l2IoctlCode.ReqBufs, ref r), "REQBUFS");
        Memory = memory;
        for (int i = 0; i < r.Count; i++)
        {
            _buffers.Add(QueryBuffer(i));
        }
        return (int)r.Count;
    }

    private bool IsMplane => BufferType == V4l2BufferType.VideoCaptureMplane;

    private TestbedBuffer QueryBuffer(int index)
    {
        var b = new V4l2Buffer { Index = (uint)index, Type = (uint)BufferType, Memory = (uint)Memory, Length = IsMplane ? (uint)V4l2Const.VideoMaxPlanes : 0 };
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        int status = BufferIoctl(V4l2IoctlCode.QueryBuf, ref b, planes, default);
        Check(status, "QUERYBUF");
        var buffer = new TestbedBuffer(index);
        int n = IsMplane ? (int)b.Length : 1;
        for (int p = 0; p < n; p++)
        {
            uint length = IsMplane ? planes[p].Length : b.Length;
            ulong offset = IsMplane ? planes[p].M : b.M;
            buffer.PlaneLengths.Add(length);
            if (Memory == V4l2Memory.Mmap)
            {
                (ulong addr, ulong len) = Mmap((uint)offset, writable: false);
                if (len != length)
                {
                    throw new VirtioMediaException(Errno.EINVAL, "MMAP: length differs from the plane length");
                }
                buffer.MappedAddresses.Add(addr);
            }
        }
        return buffer;
    }

    /// <summary>Sends a buffer ioctl with the driver's layout: v4l2_buffer, planes, then (USERPTR) the SG lists.</summary>
    public int BufferIoctl(V4l2IoctlCode code, ref V4l2Buffer buffer, Span<V4l2Plane> planes, ReadOnlySpan<SgEntry> sg)
    {
        int planeCount = IsMultiPlanar(buffer.Type) ? (int)Math.Min(buffer.Length, (uint)V4l2Const.VideoMaxPlanes) : 0;
        byte[] input = new byte[88 + 64 * planeCount + 16 * sg.Length];
        MemoryMarshal.Write(input, in buffer);
        MemoryMarshal.AsBytes(planes[..planeCount]).CopyTo(input.AsSpan(88));
        MemoryMarshal.AsBytes(sg).CopyTo(input.AsSpan(88 + 64 * planeCount));
        byte[] output = new byte[88 + 64 * planeCount];
        int status = Ioctl(code, input, output, out int written);
        if (status == 0)
        {
            if (written < 88)
            {
                return Errno.EINVAL;
            }
            buffer = MemoryMarshal.Read<V4l2Buffer>(output);
            MemoryMarshal.Cast<byte, V4l2Plane>(output.AsSpan(88, written - 88)).CopyTo(planes);
        }
        return status;
    }

    private static bool IsMultiPlanar(uint type) =>
        type is (uint)V4l2BufferType.VideoCaptureMplane or (uint)V4l2BufferType.VideoOutputMplane;

    /// <summary>CMD_MMAP: returns (driver_addr, len) or throws.</summary>
    public (ulong DriverAddr, ulong Length) Mmap(uint memOffset, bool writable)
    {
        int status = TryMmap(memOffset, writable, out ulong addr, out ulong len);
        Check(status, "MMAP");
        return (addr, len);
    }

    /// <summary>CMD_MMAP, raw.</summary>
    public int TryMmap(uint memOffset, bool writable, out ulong driverAddr, out ulong length)
    {
        Span<byte> req = stackalloc byte[VirtioMediaWire.CmdMmapSize];
        MemoryMarshal.Write(req, new CmdMmap
        {
            Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Mmap },
            SessionId = Id,
            Flags = writable ? VirtioMediaWire.MmapFlagRw : 0,
            Offset = memOffset,
        });
        Span<byte> resp = stackalloc byte[VirtioMediaWire.RespMmapSize];
        int used = _bed.SendCommand(req, resp);
        RespMmap r = MemoryMarshal.Read<RespMmap>(resp);
        driverAddr = r.DriverAddr;
        length = r.Length;
        if (used < 8)
        {
            return Errno.EINVAL;
        }
        if (r.Header.Status != 0)
        {
            return (int)r.Header.Status;
        }
        return used < VirtioMediaWire.RespMmapSize ? Errno.EINVAL : 0;
    }

    /// <summary>CMD_MUNMAP, raw.</summary>
    public int Munmap(ulong driverAddr)
    {
        Span<byte> req = stackalloc byte[VirtioMediaWire.CmdMunmapSize];
        MemoryMarshal.Write(req, new CmdMunmap { Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Munmap }, DriverAddr = driverAddr });
        Span<byte> resp = stackalloc byte[VirtioMediaWire.RespMunmapSize];
        int used = _bed.SendCommand(req, resp);
        return used < 8 ? Errno.EINVAL : (int)MemoryMarshal.Read<RespHeader>(resp).Status;
    }

    private void UnmapAll()
    {
        foreach (TestbedBuffer b in _buffers)
        {
            foreach (ulong addr in b.MappedAddresses)
            {
                Munmap(addr);
            }
        }
        _buffers.Clear();
    }

    /// <summary>QBUF of buffer <paramref name="index"/> (MMAP).</summary>
    public void QueueBuffer(int index)
    {
        var b = new V4l2Buffer { Index = (uint)index, Type = (uint)BufferType, Memory = (uint)Memory };
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        if (IsMplane)
        {
            b.Length = (uint)_buffers[index].PlaneLengths.Count;
            for (int p = 0; p < b.Length; p++)
            {
                planes[p].Length = _buffers[index].PlaneLengths[p];
            }
        }
        Check(BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, default), "QBUF");
    }

    /// <summary>QBUF of a SHARED_PAGES buffer whose planes live at the given guest-physical scatter lists.</summary>
    public int QueueUserBuffer(int index, IReadOnlyList<SgEntry[]> planeLists)
    {
        var b = new V4l2Buffer { Index = (uint)index, Type = (uint)BufferType, Memory = (uint)V4l2Memory.UserPtr };
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        var all = new List<SgEntry>();
        for (int p = 0; p < planeLists.Count; p++)
        {
            uint length = 0;
            foreach (SgEntry e in planeLists[p])
            {
                length += e.Length;
                all.Add(e);
            }
            if (IsMplane)
            {
                planes[p].Length = length;
                planes[p].M = 0x7f00_0000_0000UL + (ulong)p * 0x100000; // a guest user pointer; must come back unchanged
            }
            else
            {
                b.Length = length;
                b.M = 0x7f00_0000_0000UL;
            }
        }
        if (IsMplane)
        {
            b.Length = (uint)planeLists.Count;
        }
        return BufferIoctl(V4l2IoctlCode.QBuf, ref b, planes, CollectionsMarshal.AsSpan(all));
    }

    public void QueueAllBuffers()
    {
        for (int i = 0; i < _buffers.Count; i++)
        {
            QueueBuffer(i);
        }
    }

    public void StreamOn() => Check(IoctlWrite(V4l2IoctlCode.StreamOn, (uint)BufferType), "STREAMON");

    public void StreamOff() => Check(IoctlWrite(V4l2IoctlCode.StreamOff, (uint)BufferType), "STREAMOFF");

    /// <summary>Waits for the next DQBUF event. Disposing the frame re-queues its buffer (MMAP).</summary>
    public TestbedFrame DequeueFrame(TimeSpan timeout)
    {
        byte[]? e = _bed.WaitEvent(Id, timeout, static e => MemoryMarshal.Read<EventHeader>(e).Event == (uint)VirtioMediaEventType.Dqbuf);
        if (e is null)
        {
            throw new TimeoutException($"no frame within {timeout.TotalMilliseconds} ms");
        }
        if (e.Length < VirtioMediaWire.EventDqbufSize)
        {
            throw new VirtioMediaException(Errno.EINVAL, "DQBUF event shorter than 608 bytes");
        }
        EventDqbuf ev = MemoryMarshal.Read<EventDqbuf>(e);
        if (ev.Buffer.Index >= _buffers.Count && Memory == V4l2Memory.Mmap)
        {
            throw new VirtioMediaException(Errno.EINVAL, "DQBUF event for an unknown buffer");
        }
        return new TestbedFrame(this, ev);
    }

    /// <summary>Waits for the next event of a given type (e.g. EVT_EVENT, EVT_ERROR); null on timeout.</summary>
    public byte[]? WaitEvent(VirtioMediaEventType type, TimeSpan timeout) =>
        _bed.WaitEvent(Id, timeout, e => MemoryMarshal.Read<EventHeader>(e).Event == (uint)type);

    /// <summary>Waits for the next event <paramref name="accept"/> takes (events it passes over stay queued, in
    /// order); null on timeout.</summary>
    public byte[]? WaitEvent(Func<byte[], bool> accept, TimeSpan timeout) => _bed.WaitEvent(Id, timeout, accept);

    /// <summary>The bytes of plane <paramref name="plane"/> of buffer <paramref name="index"/>, read through the
    /// shared-memory region at the address CMD_MMAP returned — what the guest's mapping shows.</summary>
    public Span<byte> MappedPlane(int index, int plane)
    {
        TestbedBuffer b = _buffers[index];
        SharedMemoryRegion region = _bed.Device.SharedMemory ?? throw new InvalidOperationException("no shared memory region");
        return region.GetSpan(b.MappedAddresses[plane], (int)b.PlaneLengths[plane]);
    }

    public void Dispose()
    {
        if (_closed)
        {
            return;
        }
        _closed = true;
        // Like a process exit: close the file first (mappings survive it), then the mappings go away.
        List<ulong> mapped = [];
        foreach (TestbedBuffer b in _buffers)
        {
            mapped.AddRange(b.MappedAddresses);
        }
        _bed.Close(Id);
        foreach (ulong addr in mapped)
        {
            Munmap(addr);
        }
        _buffers.Clear();
    }
}

/// <summary>A buffer as the testbed's guest knows it.</summary>
public sealed class TestbedBuffer(int index)
{
    public int Index { get; } = index;
    public List<uint> PlaneLengths { get; } = [];
    /// <summary>driver_addr (region-0 offset) of each mapped plane (MMAP only).</summary>
    public List<ulong> MappedAddresses { get; } = [];
}

/// <summary>A dequeued frame. The plane spans are the mapped buffer memory itself; <see cref="Dispose"/> re-queues
/// the buffer unless <see cref="Requeue"/> is false.</summary>
public sealed class TestbedFrame : IDisposable
{
    private readonly TestbedSession _session;
    private bool _done;

    internal TestbedFrame(TestbedSession session, EventDqbuf ev)
    {
        _session = session;
        Event = ev;
    }

    /// <summary>The DQBUF event as received.</summary>
    public EventDqbuf Event { get; }

    public int Index => (int)Event.Buffer.Index;
    public uint Sequence => Event.Buffer.Sequence;
    public uint Flags => Event.Buffer.Flags;
    public TimeSpan Timestamp => TimeSpan.FromMicroseconds(Event.Buffer.TimestampSec * 1_000_000 + Event.Buffer.TimestampUsec);

    /// <summary>Set to false to keep the buffer dequeued after disposal.</summary>
    public bool Requeue { get; set; } = true;

    public int PlaneCount => _session.Buffers[Index].PlaneLengths.Count;

    /// <summary>Bytes used in plane <paramref name="plane"/> according to the event.</summary>
    public uint BytesUsed(int plane) =>
        _session.BufferType == V4l2BufferType.VideoCaptureMplane ? Event.Planes[plane].BytesUsed : Event.Buffer.BytesUsed;

    /// <summary>Plane bytes as the guest's mapping shows them (MMAP buffers).</summary>
    public Span<byte> Plane(int plane) => _session.MappedPlane(Index, plane);

    /// <summary>Format, size and strides of the frame: those of the session's last S_FMT answer.</summary>
    public FrameLayout Layout => FrameLayout.FromFormat(_session.Format);

    /// <summary>Converts the frame to RGBA (<see cref="FrameConverter"/>) into <paramref name="rgba"/>, which
    /// holds at least <see cref="FrameConverter.RgbaSize"/> bytes.</summary>
    public void ToRgba(Span<byte> rgba)
    {
        FrameLayout layout = Layout;
        FrameConverter.ToRgba(layout, Plane(0), PlaneCount > 1 ? Plane(1) : default, PlaneCount > 2 ? Plane(2) : default, rgba);
    }

    /// <summary>CRC-32C over all planes (see <see cref="FrameChecksum"/>).</summary>
    public uint Checksum()
    {
        uint crc = 0xFFFFFFFF;
        for (int p = 0; p < PlaneCount; p++)
        {
            crc = FrameChecksum.Crc32CUpdate(crc, Plane(p)[..(int)BytesUsed(p)]);
        }
        return crc ^ 0xFFFFFFFF;
    }

    public void Dispose()
    {
        if (_done)
        {
            return;
        }
        _done = true;
        if (Requeue)
        {
            _session.QueueBuffer(Index);
        }
    }
}
