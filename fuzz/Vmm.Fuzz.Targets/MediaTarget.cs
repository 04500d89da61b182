using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Fuzz.Targets;

/// <summary>
/// The virtio-media device through the embedded testbed in stepped mode (real split queues; the device's command
/// processing and frame production run on the harness's thread, so a run is deterministic) with the test-pattern
/// backend: a fresh testbed per input, then a sequence of OPEN, CLOSE, IOCTL (any code, any payload, any response
/// room), MMAP, MUNMAP and raw commands over several sessions, plus structured S_FMT, REQBUFS (+ QUERYBUF of every
/// buffer), QBUF (MMAP or SHARED_PAGES scatter lists) and STREAMON/OFF that reach streaming quickly, and event
/// pumping, which is also when frames are produced: each pump fills one queued buffer of every streaming session
/// (frames are unpaced, so one is always due).
/// <para>Scatter-list addresses that would land in the top 4 MiB (the simulated driver's own rings and buffers) are
/// moved below it: a guest may scribble over its own rings, but the simulated driver is not the code under test.</para>
/// <para>Findings: any exception (a device that does not answer a command within the driver's 5 s timeout throws
/// TimeoutException); DEVICE_NEEDS_RESET (the harness never breaks a ring, so only a device fault sets it); anything
/// the device writes to stderr (a backend exception turned into EIO, a failed frame clock); a used length larger
/// than the response room; an IOCTL answer with a status that is not an errno.</para>
/// </summary>
public static class MediaTarget
{
    private const ulong RamSize = 8UL << 20;
    private const ulong DriverArea = RamSize - VirtioMediaTestbed.ReservedTop;
    private const int MaxSessions = 8;
    private const int MaxRemembered = 64;

    private static readonly uint[] IoctlCodes = BuildCodes();
    private static readonly uint[] Formats =
        [FourCc.Yuyv, FourCc.Nv12, FourCc.Yu12, FourCc.Nv12M, FourCc.Yu12M, FourCc.Rgb24, FourCc.Bgr24, 0];
    // The test pattern's controls and classes, their neighbours, and the class bases.
    private static readonly uint[] ControlIds =
        [0x0098_0001, 0x0098_0900, 0x0098_0901, 0x0098_0902, 0x009F_0001, 0x009F_0903, 0x0098_0000, 0x009A_0900, 0x0098_08FF];
    private static readonly byte[] Response = new byte[64 * 1024];
    private static readonly StringWriter Diagnostics = new();

    static MediaTarget()
    {
        // The device reports backend exceptions and frame-clock failures on stderr; the harness reads them back.
        Console.SetError(TextWriter.Synchronized(Diagnostics));
    }

    private static uint[] BuildCodes()
    {
        V4l2IoctlCode[] known = Enum.GetValues<V4l2IoctlCode>();
        var codes = new uint[known.Length + 3];
        for (int i = 0; i < known.Length; i++)
        {
            codes[i] = (uint)known[i];
        }
        codes[^3] = 1;    // a gap in the numbering
        codes[^2] = 255;  // the largest _IOC_NR
        codes[^1] = 0x100; // beyond _IOC_NR: the device must not truncate it to 0 (QUERYCAP)
        return codes;
    }

    public static void Run(ReadOnlySpan<byte> data)
    {
        lock (Diagnostics)
        {
            Diagnostics.GetStringBuilder().Clear();
        }
        var input = new FuzzInput(data);
        byte setup = input.U8();
        var options = new TestPatternOptions
        {
            Width = 160,
            Height = 120,
            Fps = 120,
            Format = Formats[(setup >> 2) % (Formats.Length - 1)],
            MultiPlanar = (setup & 2) != 0 ? true : null,
            Paced = false,
            SharedMemorySize = 64UL << 20,
        };
        if (options.Validate() is not null)
        {
            options = options with { MultiPlanar = true };
        }
        using VirtioMediaTestbed bed = VirtioMediaTestbed.CreateStepped(options, RamSize);
        var state = new State();
        for (int step = 0; step < 128 && !input.IsEmpty; step++)
        {
            switch (input.U8() % 12)
            {
                case 0:
                    Open(bed, state);
                    break;
                case 1:
                {
                    Span<byte> req = stackalloc byte[VirtioMediaWire.CmdCloseSize];
                    MemoryMarshal.Write(req, new CmdClose { Header = Header(VirtioMediaCommand.Close), SessionId = state.Session(ref input) });
                    Send(bed, req, input.U8() % 2 == 0 ? 0 : 8);
                    break;
                }
                case 2: // any ioctl code, any payload bytes, any response room
                {
                    uint session = state.Session(ref input);
                    byte c = input.U8();
                    uint code = c < 0xF0 ? IoctlCodes[c % IoctlCodes.Length] : input.U32();
                    ReadOnlySpan<byte> payload = input.Field(4096);
                    int room = input.U16() % (Response.Length + 1);
                    Ioctl(bed, state, session, code, payload, room);
                    break;
                }
                case 3:
                {
                    Span<byte> req = stackalloc byte[VirtioMediaWire.CmdMmapSize];
                    uint session = state.Session(ref input);
                    uint offset = state.Offset(ref input);
                    byte flags = input.U8();
                    MemoryMarshal.Write(req, new CmdMmap { Header = Header(VirtioMediaCommand.Mmap), SessionId = session, Flags = flags % 4 == 3 ? input.U32() : flags & 1u, Offset = offset });
                    int used = Send(bed, req, (input.U8() & 1) != 0 ? VirtioMediaWire.RespMmapSize : input.U8() % 32);
                    if (used >= VirtioMediaWire.RespMmapSize && MemoryMarshal.Read<RespMmap>(Response) is { Header.Status: 0 } mmap)
                    {
                        state.Remember(state.DriverAddresses, mmap.DriverAddr);
                    }
                    break;
                }
                case 4:
                {
                    Span<byte> req = stackalloc byte[VirtioMediaWire.CmdMunmapSize];
                    MemoryMarshal.Write(req, new CmdMunmap { Header = Header(VirtioMediaCommand.Munmap), DriverAddr = state.DriverAddress(ref input) });
                    Send(bed, req, 8);
                    break;
                }
                case 5: // raw command bytes: bad headers, unknown commands, short structures
                {
                    ReadOnlySpan<byte> raw = input.Field(256);
                    Span<byte> req = stackalloc byte[Math.Max(1, raw.Length)];
                    req.Clear();
                    raw.CopyTo(req);
                    Send(bed, req, input.U16() % 1024);
                    break;
                }
                case 6:
                    FuzzTrace.Write($"pump: {bed.PumpEvents()} events");
                    break;
                case 7:
                    SetFormat(bed, state, ref input);
                    break;
                case 8:
                    RequestBuffers(bed, state, ref input);
                    break;
                case 9:
                    QueueBuffer(bed, state, ref input);
                    break;
                case 10:
                {
                    uint session = state.Session(ref input);
                    bool on = (input.U8() & 1) != 0;
                    Span<byte> type = stackalloc byte[4];
                    BinaryPrimitives.WriteUInt32LittleEndian(type, BufferType(ref input));
                    Ioctl(bed, state, session, (uint)(on ? V4l2IoctlCode.StreamOn : V4l2IoctlCode.StreamOff), type, 0);
                    break;
                }
                case 11: // S_EXT_CTRLS/G_EXT_CTRLS/TRY_EXT_CTRLS with one to four controls and string payload lists
                    ExtControls(bed, state, ref input);
                    break;
            }
        }
        int events = bed.PumpEvents();
        FuzzTrace.Write($"end: {events} events pumped");
        if (bed.NeedsResetReason is { } reason)
        {
            throw new FuzzInvariantException($"device set DEVICE_NEEDS_RESET: {reason}");
        }
        CheckDiagnostics();
    }

    private static void CheckDiagnostics()
    {
        string text;
        lock (Diagnostics)
        {
            text = Diagnostics.ToString();
            Diagnostics.GetStringBuilder().Clear();
        }
        if (text.Length > 0)
        {
            throw new FuzzInvariantException($"device wrote to stderr: {text.Trim()}");
        }
    }

    private static CmdHeader Header(VirtioMediaCommand cmd) => new() { Cmd = (uint)cmd };

    /// <summary>Sends a command with <paramref name="room"/> bytes of response buffer; returns the used length.</summary>
    private static int Send(VirtioMediaTestbed bed, ReadOnlySpan<byte> request, int room)
    {
        Span<byte> response = Response.AsSpan(0, room);
        response.Clear();
        int used = bed.SendCommand(request, response);
        if (FuzzTrace.Enabled)
        {
            FuzzTrace.Write($"command {MemoryMarshal.Read<uint>(request)}: used {used}, status {(used >= 4 ? MemoryMarshal.Read<uint>(response) : 0)}");
        }
        if (used < 0 || used > room)
        {
            throw new FuzzInvariantException($"used length {used} for {room} bytes of response room");
        }
        return used;
    }

    private static void Open(VirtioMediaTestbed bed, State state)
    {
        Span<byte> req = stackalloc byte[VirtioMediaWire.CmdOpenSize];
        MemoryMarshal.Write(req, Header(VirtioMediaCommand.Open));
        int used = Send(bed, req, VirtioMediaWire.RespOpenSize);
        if (used >= VirtioMediaWire.RespOpenSize && MemoryMarshal.Read<RespOpen>(Response) is { Header.Status: 0 } open
            && state.Sessions.Count < MaxSessions)
        {
            state.Sessions.Add(open.SessionId);
        }
    }

    /// <summary>One IOCTL command; returns the status, with the payload answer at <c>Response[8..used]</c>.</summary>
    private static int Ioctl(VirtioMediaTestbed bed, State state, uint session, uint code, ReadOnlySpan<byte> payload, int room, Span<byte> answer = default)
    {
        byte[] request = new byte[VirtioMediaWire.CmdIoctlSize + payload.Length];
        MemoryMarshal.Write(request, new CmdIoctl { Header = Header(VirtioMediaCommand.Ioctl), SessionId = session, Code = code });
        payload.CopyTo(request.AsSpan(VirtioMediaWire.CmdIoctlSize));
        KeepScatterListsBelowDriver(code, request.AsSpan(VirtioMediaWire.CmdIoctlSize));
        int used = Send(bed, request, Math.Min(Response.Length, VirtioMediaWire.RespHeaderSize + room));
        if (used < VirtioMediaWire.RespHeaderSize)
        {
            return -1;
        }
        uint status = MemoryMarshal.Read<RespHeader>(Response).Status;
        if (FuzzTrace.Enabled)
        {
            FuzzTrace.Write($"ioctl {(V4l2IoctlCode)code} session {session}: status {status}, used {used}");
        }
        if (status >= 4096)
        {
            throw new FuzzInvariantException($"ioctl {code} answered status {status}, not an errno");
        }
        Response.AsSpan(VirtioMediaWire.RespHeaderSize, Math.Min(answer.Length, used - VirtioMediaWire.RespHeaderSize)).CopyTo(answer);
        return (int)status;
    }

    /// <summary>Moves scatter-list entries (SHARED_PAGES buffers, pointer-control payloads) that overlap the simulated
    /// driver's area below it. The entries are found where the device looks for them: after the v4l2_buffer and its
    /// planes, or after the v4l2_ext_controls header and its control array. Deterministic, so a saved input
    /// replays the same.</summary>
    private static void KeepScatterListsBelowDriver(uint code, Span<byte> payload)
    {
        long sg;
        switch ((V4l2IoctlCode)code)
        {
            case V4l2IoctlCode.QBuf or V4l2IoctlCode.PrepareBuf or V4l2IoctlCode.QueryBuf:
            {
                uint type = FuzzInput.ReadU32(payload, 4);
                uint planes = FuzzInput.ReadU32(payload, 72);
                sg = 88 + (IsMplane(type) ? 64L * Math.Min(planes, (uint)V4l2Const.VideoMaxPlanes) : 0);
                break;
            }
            case V4l2IoctlCode.GExtCtrls or V4l2IoctlCode.SExtCtrls or V4l2IoctlCode.TryExtCtrls:
                sg = 32 + 20L * FuzzInput.ReadU32(payload, 4);
                break;
            default:
                return;
        }
        for (long o = sg; o + VirtioMediaWire.SgEntrySize <= payload.Length; o += VirtioMediaWire.SgEntrySize)
        {
            Span<byte> entry = payload.Slice((int)o, VirtioMediaWire.SgEntrySize);
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(entry);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
            ulong end = start + length;
            if (start < RamSize && (end > DriverArea || end < start))
            {
                start %= DriverArea;
                BinaryPrimitives.WriteUInt64LittleEndian(entry, start);
                if (start + length > DriverArea)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], (uint)(DriverArea - start));
                }
            }
        }
    }

    private static uint BufferType(ref FuzzInput input)
    {
        byte b = input.U8();
        return (b % 4) switch
        {
            0 => (uint)V4l2BufferType.VideoCapture,
            1 => (uint)V4l2BufferType.VideoCaptureMplane,
            2 => (uint)V4l2BufferType.VideoOutput,
            _ => (uint)b >> 2,
        };
    }

    private static uint MemoryType(ref FuzzInput input)
    {
        byte b = input.U8();
        return (b % 4) switch
        {
            0 => (uint)V4l2Memory.Mmap,
            1 => (uint)V4l2Memory.UserPtr,
            2 => (uint)V4l2Memory.DmaBuf,
            _ => (uint)b >> 2,
        };
    }

    private static bool IsMplane(uint type) => type is (uint)V4l2BufferType.VideoCaptureMplane or (uint)V4l2BufferType.VideoOutputMplane;

    private static void SetFormat(VirtioMediaTestbed bed, State state, ref FuzzInput input)
    {
        uint session = state.Session(ref input);
        uint type = BufferType(ref input);
        byte f = input.U8();
        uint fourcc = f < 0xF0 ? Formats[f % Formats.Length] : input.U32();
        var format = new V4l2Format { Type = type };
        if (IsMplane(type))
        {
            format.PixMp.PixelFormat = fourcc;
            format.PixMp.Width = input.U16();
            format.PixMp.Height = input.U16();
            format.PixMp.NumPlanes = input.U8();
        }
        else
        {
            format.Pix.PixelFormat = fourcc;
            format.Pix.Width = input.U16();
            format.Pix.Height = input.U16();
            format.Pix.BytesPerLine = input.U8() == 0xFF ? input.U32() : 0;
        }
        byte op = input.U8();
        V4l2IoctlCode code = (op % 3) switch { 0 => V4l2IoctlCode.SFmt, 1 => V4l2IoctlCode.TryFmt, _ => V4l2IoctlCode.GFmt };
        Ioctl(bed, state, session, (uint)code, MemoryMarshal.AsBytes(new ReadOnlySpan<V4l2Format>(in format)), 208);
    }

    /// <summary>REQBUFS, then QUERYBUF of every buffer granted; remembers the plane offsets for MMAP.</summary>
    private static void RequestBuffers(VirtioMediaTestbed bed, State state, ref FuzzInput input)
    {
        uint session = state.Session(ref input);
        var r = new V4l2RequestBuffers { Count = input.U8() % 34u, Type = BufferType(ref input), Memory = MemoryType(ref input) };
        Span<byte> answer = stackalloc byte[20];
        int status = Ioctl(bed, state, session, (uint)V4l2IoctlCode.ReqBufs, MemoryMarshal.AsBytes(new ReadOnlySpan<V4l2RequestBuffers>(in r)), 20, answer);
        if (status != 0)
        {
            return;
        }
        uint granted = Math.Min(MemoryMarshal.Read<V4l2RequestBuffers>(answer).Count, 32);
        bool mplane = IsMplane(r.Type);
        Span<byte> query = stackalloc byte[88 + 64 * V4l2Const.VideoMaxPlanes];
        Span<byte> reply = stackalloc byte[88 + 64 * V4l2Const.VideoMaxPlanes];
        for (uint i = 0; i < granted; i++)
        {
            query.Clear();
            var b = new V4l2Buffer { Index = i, Type = r.Type, Memory = r.Memory, Length = mplane ? (uint)V4l2Const.VideoMaxPlanes : 0 };
            MemoryMarshal.Write(query, in b);
            int length = mplane ? query.Length : 88;
            if (Ioctl(bed, state, session, (uint)V4l2IoctlCode.QueryBuf, query[..length], length, reply) != 0)
            {
                continue;
            }
            V4l2Buffer got = MemoryMarshal.Read<V4l2Buffer>(reply);
            if (!mplane)
            {
                state.Remember(state.Offsets, (uint)got.M);
                continue;
            }
            for (int p = 0; p < Math.Min(got.Length, (uint)V4l2Const.VideoMaxPlanes); p++)
            {
                state.Remember(state.Offsets, (uint)MemoryMarshal.Read<V4l2Plane>(reply[(88 + 64 * p)..]).M);
            }
        }
    }

    /// <summary>QBUF or PREPARE_BUF: MMAP buffers by index, or USERPTR buffers with per-plane scatter lists of guest
    /// pages (anywhere in guest RAM below the driver area, or any raw address).</summary>
    private static void QueueBuffer(VirtioMediaTestbed bed, State state, ref FuzzInput input)
    {
        uint session = state.Session(ref input);
        var b = new V4l2Buffer { Index = input.U8() % 40u, Type = BufferType(ref input), Memory = MemoryType(ref input) };
        bool mplane = IsMplane(b.Type);
        int planes = mplane ? input.U8() % 4 : 0;
        b.Length = mplane ? (uint)planes : input.U32();
        b.Flags = input.U8() == 0xFF ? input.U32() : 0;
        var payload = new List<byte>(88 + 64 * planes + 256);
        Span<byte> bytes = stackalloc byte[88];
        MemoryMarshal.Write(bytes, in b);
        payload.AddRange(bytes);
        Span<byte> plane = stackalloc byte[64];
        for (int p = 0; p < planes; p++)
        {
            plane.Clear();
            MemoryMarshal.Write(plane, new V4l2Plane { Length = input.U32(), BytesUsed = input.U8() });
            payload.AddRange(plane);
        }
        if (b.Memory == (uint)V4l2Memory.UserPtr)
        {
            int entries = input.U8() % 9;
            Span<byte> sg = stackalloc byte[VirtioMediaWire.SgEntrySize];
            for (int i = 0; i < entries; i++)
            {
                uint a = input.U32();
                ulong start = (a & 0x8000_0000) != 0 ? input.U64() : (a % (uint)DriverArea) & ~0xFFFu;
                uint pages = input.U8();
                uint length = pages == 0xFF ? input.U32() : (pages + 1) * 0x1000u;
                MemoryMarshal.Write(sg, new SgEntry { Start = start, Length = length });
                payload.AddRange(sg);
            }
        }
        uint code = (uint)((input.U8() & 1) == 0 ? V4l2IoctlCode.QBuf : V4l2IoctlCode.PrepareBuf);
        Ioctl(bed, state, session, code, CollectionsMarshal.AsSpan(payload), 88 + 64 * planes);
    }

    private static void ExtControls(VirtioMediaTestbed bed, State state, ref FuzzInput input)
    {
        uint session = state.Session(ref input);
        byte op = input.U8();
        V4l2IoctlCode code = (op % 3) switch { 0 => V4l2IoctlCode.SExtCtrls, 1 => V4l2IoctlCode.GExtCtrls, _ => V4l2IoctlCode.TryExtCtrls };
        int count = input.U8() % 5;
        uint declared = input.U8() == 0xFF ? input.U32() : (uint)count;
        var payload = new List<byte>(32 + 20 * count + 64);
        Span<byte> header = stackalloc byte[32];
        MemoryMarshal.Write(header, new V4l2ExtControls { Which = input.U8() == 0xFF ? input.U32() : 0, Count = declared });
        payload.AddRange(header);
        Span<byte> control = stackalloc byte[20];
        for (int i = 0; i < count; i++)
        {
            // Test-pattern control ids live at 0x00980900 + n (user class) and the camera class.
            uint id = input.U8() is var k && k < 0xF0 ? ControlIds[k % ControlIds.Length] : input.U32();
            MemoryMarshal.Write(control, new V4l2ExtControl { Id = id, Size = input.U8() == 0xFF ? input.U32() : 0, Value = (int)input.U32() });
            payload.AddRange(control);
        }
        ReadOnlySpan<byte> tail = input.Field(128);
        foreach (byte t in tail)
        {
            payload.Add(t);
        }
        Ioctl(bed, state, session, (uint)code, CollectionsMarshal.AsSpan(payload), 32 + 20 * count);
    }

    /// <summary>What the simulated guest remembers: its sessions, the buffer offsets QUERYBUF gave, the addresses
    /// MMAP gave. Operations pick from these (or any raw value) so a run reaches deep states quickly.</summary>
    private sealed class State
    {
        public readonly List<uint> Sessions = [];
        public readonly List<ulong> Offsets = [];
        public readonly List<ulong> DriverAddresses = [];

        public void Remember(List<ulong> list, ulong value)
        {
            if (list.Count < MaxRemembered)
            {
                list.Add(value);
            }
        }

        public uint Session(ref FuzzInput input)
        {
            byte b = input.U8();
            if (b < 0xF0 && Sessions.Count > 0)
            {
                return Sessions[b % Sessions.Count];
            }
            return b == 0xFF ? input.U32() : b;
        }

        public uint Offset(ref FuzzInput input)
        {
            byte b = input.U8();
            if (b < 0xF0 && Offsets.Count > 0)
            {
                return (uint)Offsets[b % Offsets.Count];
            }
            return input.U32();
        }

        public ulong DriverAddress(ref FuzzInput input)
        {
            byte b = input.U8();
            if (b < 0xF0 && DriverAddresses.Count > 0)
            {
                return DriverAddresses[b % DriverAddresses.Count];
            }
            return input.U64();
        }
    }
}
