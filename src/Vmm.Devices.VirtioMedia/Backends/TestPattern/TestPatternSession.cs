using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>
/// One open file handle on the test-pattern camera: its format, frame interval, buffer queue and event
/// subscriptions. Ioctls arrive on the device's command thread; frames are produced on the frame-clock thread.
/// Pixels are written without holding <see cref="_lock"/>, so a slow frame never delays a command.
/// </summary>
public sealed class TestPatternSession : MediaBackendSession
{
    private const int MaxBuffers = V4l2Const.VideoMaxFrame;
    // The user's limit (max-buffers), never above V4L2's VIDEO_MAX_FRAME.
    private int MaxBuffersPerQueue => Math.Min(_host.Limits.MaxBuffersPerQueue, MaxBuffers);

    private readonly TestPatternBackend _backend;
    private readonly IMediaSessionHost _host;
    private readonly object _lock = new();
    private readonly TestPatternRenderer _renderer = new();
    // The scatter lists of the buffer being filled, copied when the fill takes it: a QBUF that rewrites the buffer's
    // lists meanwhile (after STREAMOFF) cannot redirect pixels. Only the frame clock's thread touches them.
    private readonly List<GuestSegment>[] _fillSegments = [[], [], []];
    // A fill into guest pages is running (set and cleared under _lock, pulsed when it ends); STREAMOFF waits for it.
    private bool _guestPageFillInFlight;
    private int _fillThreadId;

    private readonly CaptureBuffer[] _buffers = new CaptureBuffer[MaxBuffers];
    private int _bufferCount;
    private uint _queueType;           // buffer type the buffers were requested for (1 or 9), 0 when none
    private V4l2Memory _memory;
    private readonly Queue<int> _queued = new(MaxBuffers);
    private bool _streaming;
    private int _streamGeneration;
    private uint _sequence;
    private long _nextDue = long.MaxValue;
    private bool _closed;

    private readonly List<(uint Type, uint Id, uint Flags)> _subscriptions = [];

    private enum BufferState { Dequeued, Queued, Filling }

    private sealed class CaptureBuffer
    {
        public readonly MmapBuffer?[] Planes = new MmapBuffer?[3];
        // References held by the frame clock while it writes pixels; only that thread touches this array, so the
        // owner may release Planes (REQBUFS(0), CLOSE) meanwhile without freeing memory that is being written.
        public readonly MmapBuffer?[] Filling = new MmapBuffer?[3];
        public readonly List<GuestSegment>[] Segments = [[], [], []];
        public readonly uint[] PlaneLength = new uint[3];
        public int PlaneCount;
        public BufferState State;
        // PREPARE_BUF done while dequeued; consumed by the next QBUF (vb2 semantics), cleared by STREAMOFF.
        public bool Prepared;
        public uint BytesUsed;
        // A static image (TestPatternOptions.StaticImage) is rendered into an MMAP buffer once, at its first fill.
        public bool Rendered;
        public uint BytesUsedOf(int plane) => BytesUsed == 0 ? 0 : PlaneLength[plane];
    }

    internal TestPatternSession(TestPatternBackend backend, IMediaSessionHost host)
    {
        _backend = backend;
        _host = host;
    }

    // Format and frame rate belong to the device, shared by every handle (V4L2 keeps them per handle only for
    // mem-to-mem devices; v4l2-compliance checks that a second handle sees S_FMT). S_FMT is refused while any
    // handle owns buffers, so they cannot change under a streaming session.
    private PixelFormatInfo DeviceFormat => _backend.CurrentFormat.Format;
    private uint DeviceWidth => _backend.CurrentFormat.Width;
    private uint DeviceHeight => _backend.CurrentFormat.Height;
    private uint DeviceFps => _backend.CurrentFps;
    private long FrameInterval => _backend.Options.Paced ? Stopwatch.Frequency / DeviceFps : 0;

    /// <summary>Frames produced since the last STREAMON.</summary>
    public uint Sequence
    {
        get
        {
            lock (_lock)
            {
                return _sequence;
            }
        }
    }

    // Only the buffer type of the API the device offers; the other one is EINVAL like any unsupported type.
    private bool IsCaptureType(uint type) => type == _backend.CaptureBufferType;

    // A format this device enumerates (multi-planar-only formats exist on the multi-planar API only).
    private PixelFormatInfo? FindOffered(uint fourcc) =>
        PixelFormats.Find(fourcc) is { } f && (!f.MultiPlanarOnly || IsMplane(_backend.CaptureBufferType)) ? f : null;

    private static bool IsMplane(uint type) => type == (uint)V4l2BufferType.VideoCaptureMplane;

    // ---- formats ----

    public override int EnumFormat(ref V4l2FmtDesc desc)
    {
        if (!IsCaptureType(desc.Type))
        {
            return Errno.EINVAL;
        }
        bool mplane = IsMplane(desc.Type);
        uint n = 0;
        foreach (PixelFormatInfo f in PixelFormats.All)
        {
            if (f.MultiPlanarOnly && !mplane)
            {
                continue;
            }
            if (n++ == desc.Index)
            {
                uint index = desc.Index, type = desc.Type;
                desc = default;
                desc.Index = index;
                desc.Type = type;
                desc.PixelFormat = f.FourCc;
                unsafe
                {
                    // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
                    V4l2Text.Write(ref desc.Description[0], f.Description);
                }
                return 0;
            }
        }
        return Errno.EINVAL;
    }

    public override int GetFormat(ref V4l2Format format)
    {
        if (!IsCaptureType(format.Type))
        {
            return Errno.EINVAL;
        }
        lock (_lock)
        {
            FillFormat(ref format, DeviceFormat, DeviceWidth, DeviceHeight);
        }
        return 0;
    }

    public override int TryFormat(ref V4l2Format format)
    {
        if (!IsCaptureType(format.Type))
        {
            return Errno.EINVAL;
        }
        (PixelFormatInfo f, uint w, uint h) = Adjust(format);
        FillFormat(ref format, f, w, h);
        return 0;
    }

    public override int SetFormat(ref V4l2Format format)
    {
        if (!IsCaptureType(format.Type))
        {
            return Errno.EINVAL;
        }
        (PixelFormatInfo f, uint w, uint h) = Adjust(format);
        lock (_lock)
        {
            if (_bufferCount > 0 || _streaming || _backend.IsOwnedByOther(this))
            {
                return Errno.EBUSY;
            }
            _backend.SetFormat(f, w, h);
        }
        FillFormat(ref format, f, w, h);
        return 0;
    }

    private (PixelFormatInfo Format, uint Width, uint Height) Adjust(in V4l2Format request)
    {
        bool mplane = IsMplane(request.Type);
        uint fourcc = mplane ? request.PixMp.PixelFormat : request.Pix.PixelFormat;
        uint w = mplane ? request.PixMp.Width : request.Pix.Width;
        uint h = mplane ? request.PixMp.Height : request.Pix.Height;
        PixelFormatInfo? f = PixelFormats.Find(fourcc);
        if (f is null || (f.MultiPlanarOnly && !mplane))
        {
            // V4L2: an unsupported pixel format is replaced, never an error.
            f = PixelFormats.All[0];
        }
        (uint nw, uint nh) = _backend.NearestSize(w, h);
        return (f, nw, nh);
    }

    private static void FillFormat(ref V4l2Format format, PixelFormatInfo f, uint w, uint h)
    {
        uint type = format.Type;
        format = default;
        format.Type = type;
        if (IsMplane(type))
        {
            ref V4l2PixFormatMplane mp = ref format.PixMp;
            mp.Width = w;
            mp.Height = h;
            mp.PixelFormat = f.FourCc;
            mp.Field = V4l2Const.FieldNone;
            mp.Colorspace = f.Colorspace;
            mp.NumPlanes = (byte)f.MemoryPlanes;
            for (int p = 0; p < f.MemoryPlanes; p++)
            {
                mp.PlaneFmt(p).BytesPerLine = f.BytesPerLine(p, w);
                mp.PlaneFmt(p).SizeImage = f.SizeImage(p, w, h);
            }
        }
        else
        {
            ref V4l2PixFormat pix = ref format.Pix;
            pix.Width = w;
            pix.Height = h;
            pix.PixelFormat = f.FourCc;
            pix.Field = V4l2Const.FieldNone;
            pix.BytesPerLine = f.BytesPerLine(0, w);
            pix.SizeImage = f.SizeImage(0, w, h);
            pix.Colorspace = f.Colorspace;
        }
    }

    public override int EnumFrameSizes(ref V4l2FrmSizeEnum sizes)
    {
        if (FindOffered(sizes.PixelFormat) is null || sizes.Index >= _backend.FrameSizes.Length)
        {
            return Errno.EINVAL;
        }
        (uint w, uint h) = _backend.FrameSizes[sizes.Index];
        uint index = sizes.Index, fourcc = sizes.PixelFormat;
        sizes = default;
        sizes.Index = index;
        sizes.PixelFormat = fourcc;
        sizes.Type = V4l2Const.FrmSizeTypeDiscrete;
        sizes.Width = w;
        sizes.Height = h;
        return 0;
    }

    public override int EnumFrameIntervals(ref V4l2FrmIvalEnum intervals)
    {
        if (FindOffered(intervals.PixelFormat) is null || !_backend.IsSupportedSize(intervals.Width, intervals.Height)
            || intervals.Index >= _backend.FrameRates.Length)
        {
            return Errno.EINVAL;
        }
        // Fastest rate (shortest interval) first.
        uint fps = _backend.FrameRates[_backend.FrameRates.Length - 1 - (int)intervals.Index];
        uint index = intervals.Index, fourcc = intervals.PixelFormat, w = intervals.Width, h = intervals.Height;
        intervals = default;
        intervals.Index = index;
        intervals.PixelFormat = fourcc;
        intervals.Width = w;
        intervals.Height = h;
        intervals.Type = V4l2Const.FrmIvalTypeDiscrete;
        intervals.Discrete = new V4l2Fract(1, fps);
        return 0;
    }

    public override int GetParm(ref V4l2StreamParm parm)
    {
        if (!IsCaptureType(parm.Type))
        {
            return Errno.EINVAL;
        }
        uint type = parm.Type;
        parm = default;
        parm.Type = type;
        parm.Capability = V4l2Const.CapTimePerFrame;
        lock (_lock)
        {
            parm.TimePerFrame = new V4l2Fract(1, DeviceFps);
        }
        return 0;
    }

    public override int SetParm(ref V4l2StreamParm parm)
    {
        if (!IsCaptureType(parm.Type))
        {
            return Errno.EINVAL;
        }
        V4l2Fract requested = parm.TimePerFrame;
        lock (_lock)
        {
            // The rate is the device's, like the format: while another handle owns the queue, only that handle may
            // change it (as S_FMT), or any application could throttle the one streaming.
            if (_backend.IsOwnedByOther(this))
            {
                return Errno.EBUSY;
            }
            if (requested.Numerator != 0 && requested.Denominator != 0)
            {
                uint fps = (uint)Math.Clamp((requested.Denominator + requested.Numerator / 2) / requested.Numerator, 1, uint.MaxValue);
                _backend.SetFps(_backend.NearestRate(fps));
            }
        }
        return GetParm(ref parm);
    }

    // ---- inputs ----

    public override int EnumInput(ref V4l2Input input)
    {
        if (input.Index != 0)
        {
            return Errno.EINVAL;
        }
        input = default;
        input.Type = V4l2Const.InputTypeCamera;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref input.Name[0], "Test Pattern");
        }
        return 0;
    }

    public override int GetInput(out uint index)
    {
        index = 0;
        return 0;
    }

    public override int SetInput(ref uint index) => index == 0 ? 0 : Errno.EINVAL;

    // ---- selection (no cropping: every rectangle is the full frame) ----

    public override int GetSelection(ref V4l2Selection selection)
    {
        if (!IsCaptureType(selection.Type))
        {
            return Errno.EINVAL;
        }
        if (selection.Target is not (V4l2Const.SelTgtCrop or V4l2Const.SelTgtCropDefault or V4l2Const.SelTgtCropBounds or V4l2Const.SelTgtNativeSize))
        {
            return Errno.EINVAL;
        }
        lock (_lock)
        {
            selection.Flags = 0;
            selection.Rect = new V4l2Rect { Left = 0, Top = 0, Width = DeviceWidth, Height = DeviceHeight };
        }
        return 0;
    }

    // No S_SELECTION: the size is chosen among several discrete frame sizes with S_FMT, and V4L2 (checked by
    // v4l2-compliance) does not allow a crop that could change it as well.
    public override int SetSelection(ref V4l2Selection selection) => Errno.ENOTTY;

    // ---- buffers ----

    public override int RequestBuffers(ref V4l2RequestBuffers request)
    {
        if (!IsCaptureType(request.Type))
        {
            return Errno.EINVAL;
        }
        if (request.Memory is not ((uint)V4l2Memory.Mmap or (uint)V4l2Memory.UserPtr))
        {
            return Errno.EINVAL;
        }
        var memory = (V4l2Memory)request.Memory;
        if (memory == V4l2Memory.Mmap && _host.Shm is null)
        {
            return Errno.EINVAL;
        }
        uint count = Math.Min(request.Count, (uint)MaxBuffersPerQueue);
        lock (_lock)
        {
            if (_streaming)
            {
                return Errno.EBUSY;
            }
            // Another handle owns the buffers: EBUSY for any count, REQBUFS(0) included (vb2's queue-owner rule;
            // only the owner may free them).
            if (count > 0 ? !_backend.TryTakeBufferOwnership(this) : _backend.IsOwnedByOther(this))
            {
                return Errno.EBUSY;
            }
            FreeBuffersLocked();
            if (count == 0)
            {
                _backend.ReleaseBufferOwnership(this);
                _host.DropPendingDqbufs();
            }
            else
            {
                int status = AllocateLocked((int)count, memory, request.Type);
                if (status != 0)
                {
                    _backend.ReleaseBufferOwnership(this);
                    return status;
                }
            }
            request.Count = (uint)_bufferCount;
        }
        request.Capabilities = BufferCapabilities;
        // flags (no cache hints supported) and reserved[3] go back as 0.
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref request, 1))[ReservedRequestBuffersOffset..].Clear();
        return 0;
    }

    // Offsets of max_num_buffers in v4l2_create_buffers and of flags in v4l2_requestbuffers; everything from
    // there to the end is output-only and zero for this device.
    private const int ReservedCreateBuffersOffset = 232, ReservedRequestBuffersOffset = 16;

    private static uint BufferCapabilities =>
        V4l2Const.BufCapSupportsMmap | V4l2Const.BufCapSupportsUserPtr | V4l2Const.BufCapSupportsOrphanedBufs;

    private bool RequestedSizesFit(ref V4l2CreateBuffers create, bool mplane, PixelFormatInfo f)
    {
        if (!mplane)
        {
            return create.Format.Pix.SizeImage >= f.SizeImage(0, DeviceWidth, DeviceHeight);
        }
        if (create.Format.PixMp.NumPlanes != f.MemoryPlanes)
        {
            return false;
        }
        for (int p = 0; p < create.Format.PixMp.NumPlanes; p++)
        {
            if (create.Format.PixMp.PlaneFmt(p).SizeImage < f.SizeImage(p, DeviceWidth, DeviceHeight))
            {
                return false;
            }
        }
        return true;
    }

    public override int CreateBuffers(ref V4l2CreateBuffers create)
    {
        if (!IsCaptureType(create.Format.Type))
        {
            return Errno.EINVAL;
        }
        if (create.Memory is not ((uint)V4l2Memory.Mmap or (uint)V4l2Memory.UserPtr))
        {
            return Errno.EINVAL;
        }
        var memory = (V4l2Memory)create.Memory;
        if (memory == V4l2Memory.Mmap && _host.Shm is null)
        {
            return Errno.EINVAL;
        }
        // The requested format must describe buffers at least as large as the current format needs.
        lock (_lock)
        {
            bool mplane = IsMplane(create.Format.Type);
            // One capture API per device: a multi-planar-only device format implies the multi-planar API.
            PixelFormatInfo f = DeviceFormat;
            if (_bufferCount > 0 && (_memory != memory || _queueType != create.Format.Type))
            {
                return Errno.EINVAL;
            }
            create.Index = (uint)_bufferCount;
            create.Capabilities = BufferCapabilities;
            create.Flags = 0;
            // max_num_buffers and the reserved words go back as 0 (and SUPPORTS_MAX_NUM_BUFFERS stays unset):
            // applications built against older headers (v4l2-compliance 1.22) see them all as reserved and
            // require zeros, whatever they sent.
            MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref create, 1))[ReservedCreateBuffersOffset..].Clear();
            if (create.Count == 0)
            {
                return 0;
            }
            if (!_backend.TryTakeBufferOwnership(this))
            {
                return Errno.EBUSY;
            }
            int before = _bufferCount;
            int status = CreateBuffersOwnedLocked(ref create, memory, mplane, f);
            // vb2 makes a handle the owner only when its call succeeds: every failure that left this session without
            // buffers gives the queue back, or one refused request would lock every other session out.
            if (status != 0)
            {
                if (_bufferCount == 0)
                {
                    _backend.ReleaseBufferOwnership(this);
                }
                return status;
            }
            create.Count = (uint)(_bufferCount - before);
        }
        return 0;
    }

    // CREATE_BUFS once this session owns the queue: the checks vb2 makes after the ownership check, then the allocation.
    private int CreateBuffersOwnedLocked(ref V4l2CreateBuffers create, V4l2Memory memory, bool mplane, PixelFormatInfo f)
    {
        // As vb2_ioctl_create_bufs: after the query (count 0) and the ownership check, the plane count must be
        // given and match, and no plane may be smaller than the current format needs (0 included).
        if (!RequestedSizesFit(ref create, mplane, f))
        {
            return Errno.EINVAL;
        }
        int wanted = (int)Math.Min(create.Count, (uint)Math.Max(0, MaxBuffersPerQueue - _bufferCount));
        if (wanted == 0)
        {
            return Errno.ENOBUFS;
        }
        // Buffers are at least as large as the request's sizeimage (an application may ask for bigger ones).
        Span<uint> planeSizes = stackalloc uint[3];
        for (int p = 0; p < f.MemoryPlanes; p++)
        {
            uint requested = mplane ? create.Format.PixMp.PlaneFmt(p).SizeImage : p == 0 ? create.Format.Pix.SizeImage : 0;
            if (requested > MaxPlaneBytes)
            {
                return Errno.EINVAL;
            }
            planeSizes[p] = Math.Max(requested, f.SizeImage(p, DeviceWidth, DeviceHeight));
        }
        return AllocateLocked(wanted, memory, create.Format.Type, planeSizes, append: true);
    }

    // Largest plane CREATE_BUFS may ask for (a 3840×2160 RGB24 frame is 24 MiB).
    private const uint MaxPlaneBytes = 256u << 20;

    private int AllocateLocked(int count, V4l2Memory memory, uint type, ReadOnlySpan<uint> planeSizes = default, bool append = false)
    {
        if (!append)
        {
            _bufferCount = 0;
        }
        PixelFormatInfo f = DeviceFormat;
        int start = _bufferCount;
        for (int i = start; i < start + count; i++)
        {
            var b = new CaptureBuffer { PlaneCount = f.MemoryPlanes };
            bool ok = true;
            for (int p = 0; p < f.MemoryPlanes; p++)
            {
                b.PlaneLength[p] = planeSizes.IsEmpty ? f.SizeImage(p, DeviceWidth, DeviceHeight) : planeSizes[p];
                if (memory == V4l2Memory.Mmap)
                {
                    b.Planes[p] = _host.Shm!.TryAllocate(b.PlaneLength[p]);
                    ok &= b.Planes[p] is not null;
                }
            }
            if (!ok)
            {
                ReleasePlanes(b);
                break;
            }
            _buffers[i] = b;
            _bufferCount = i + 1;
        }
        if (_bufferCount == start)
        {
            return Errno.ENOMEM;
        }
        _memory = memory;
        _queueType = type;
        return 0;
    }

    private static void ReleasePlanes(CaptureBuffer b)
    {
        for (int p = 0; p < b.Planes.Length; p++)
        {
            b.Planes[p]?.Release();
            b.Planes[p] = null;
        }
    }

    private void FreeBuffersLocked()
    {
        for (int i = 0; i < _bufferCount; i++)
        {
            // A buffer being filled keeps its own references; dropping the owner's reference here is safe.
            ReleasePlanes(_buffers[i]);
            _buffers[i] = null!;
        }
        _bufferCount = 0;
        _queueType = 0;
        _queued.Clear();
    }

    private int CheckBuffer(in V4l2Buffer buffer, out CaptureBuffer b)
    {
        b = null!;
        if (_bufferCount == 0 || buffer.Type != _queueType || buffer.Index >= _bufferCount)
        {
            return Errno.EINVAL;
        }
        b = _buffers[buffer.Index];
        return 0;
    }

    private void DescribeBuffer(int index, CaptureBuffer b, ref V4l2Buffer buffer, Span<V4l2Plane> planes)
    {
        bool mplane = IsMplane(_queueType);
        buffer.Index = (uint)index;
        buffer.Type = _queueType;
        buffer.Memory = (uint)_memory;
        buffer.Field = V4l2Const.FieldNone;
        buffer.Flags = V4l2Const.BufFlagTimestampMonotonic
            | (b.State != BufferState.Dequeued ? V4l2Const.BufFlagQueued : b.Prepared ? V4l2Const.BufFlagPrepared : 0);
        buffer.Sequence = 0;
        buffer.TimestampSec = 0;
        buffer.TimestampUsec = 0;
        buffer.Timecode = default;
        buffer.RequestFd = 0;
        buffer.Reserved2 = 0;
        if (mplane)
        {
            buffer.BytesUsed = 0;
            buffer.Length = (uint)b.PlaneCount;
            for (int p = 0; p < b.PlaneCount && p < planes.Length; p++)
            {
                planes[p] = default;
                planes[p].Length = b.PlaneLength[p];
                planes[p].BytesUsed = b.State == BufferState.Dequeued ? b.BytesUsedOf(p) : 0;
                planes[p].M = _memory == V4l2Memory.Mmap ? b.Planes[p]!.Offset : planes[p].M;
            }
        }
        else
        {
            buffer.BytesUsed = b.BytesUsed;
            buffer.Length = b.PlaneLength[0];
            if (_memory == V4l2Memory.Mmap)
            {
                buffer.M = b.Planes[0]!.Offset;
            }
        }
    }

    public override int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes)
    {
        lock (_lock)
        {
            int status = CheckBuffer(buffer, out CaptureBuffer b);
            if (status != 0)
            {
                return status;
            }
            if (IsMplane(_queueType) && planes.Length < b.PlaneCount)
            {
                return Errno.EINVAL;
            }
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        return 0;
    }

    public override int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        lock (_lock)
        {
            int status = CheckBuffer(buffer, out CaptureBuffer b);
            if (status != 0)
            {
                return status;
            }
            bool mplane = IsMplane(_queueType);
            // Only a dequeued, not yet prepared buffer can be prepared (queued or twice: EINVAL, as vb2 answers).
            if (buffer.Memory != (uint)_memory || (mplane && planes.Length < b.PlaneCount)
                || b.State != BufferState.Dequeued || b.Prepared)
            {
                return Errno.EINVAL;
            }
            if (_memory == V4l2Memory.UserPtr)
            {
                status = AttachSharedPages(b, buffer, planes, pages, mplane);
                if (status != 0)
                {
                    return status;
                }
            }
            b.Prepared = true;
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        return 0;
    }

    public override int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        lock (_lock)
        {
            int status = CheckBuffer(buffer, out CaptureBuffer b);
            if (status != 0)
            {
                return status;
            }
            if (buffer.Memory != (uint)_memory || b.State != BufferState.Dequeued)
            {
                return Errno.EINVAL;
            }
            bool mplane = IsMplane(_queueType);
            if (mplane && planes.Length < b.PlaneCount)
            {
                return Errno.EINVAL;
            }
            if (_memory == V4l2Memory.UserPtr)
            {
                status = AttachSharedPages(b, buffer, planes, pages, mplane);
                if (status != 0)
                {
                    return status;
                }
            }
            b.State = BufferState.Queued;
            b.Prepared = false;
            _queued.Enqueue((int)buffer.Index);
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        _host.WakeFrameClock();
        return 0;
    }

    // Validates the guest's scatter lists against guest RAM and the plane sizes, then keeps them in the buffer.
    private int AttachSharedPages(CaptureBuffer b, in V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages, bool mplane)
    {
        GuestMemory? memory = _host.GuestMemory;
        if (memory is null || pages.PlaneCount < (mplane ? b.PlaneCount : 1))
        {
            return Errno.EFAULT;
        }
        for (int p = 0; p < b.PlaneCount; p++)
        {
            uint length = mplane ? planes[p].Length : buffer.Length;
            if (!mplane && p > 0)
            {
                break;
            }
            uint needed = mplane ? b.PlaneLength[p] : TotalLength(b);
            if (length < needed)
            {
                return Errno.EINVAL;
            }
            ReadOnlySpan<SgEntry> list = pages.Plane(p);
            List<GuestSegment> segments = b.Segments[p];
            segments.Clear();
            foreach (SgEntry e in list)
            {
                if (!memory.IsValidRange(new GuestAddress(e.Start), e.Length))
                {
                    segments.Clear();
                    return Errno.EFAULT;
                }
                segments.Add(new GuestSegment(new GuestAddress(e.Start), e.Length));
            }
        }
        return 0;
    }

    private static uint TotalLength(CaptureBuffer b)
    {
        uint total = 0;
        for (int p = 0; p < b.PlaneCount; p++)
        {
            total += b.PlaneLength[p];
        }
        return total;
    }

    public override int StreamOn(uint bufferType)
    {
        lock (_lock)
        {
            if (!IsCaptureType(bufferType) || _bufferCount == 0 || bufferType != _queueType)
            {
                return Errno.EINVAL;
            }
            if (_streaming)
            {
                return 0;
            }
            _streaming = true;
            _streamGeneration++;
            _sequence = 0;
            _nextDue = Stopwatch.GetTimestamp();
        }
        _host.WakeFrameClock();
        return 0;
    }

    public override int StreamOff(uint bufferType)
    {
        lock (_lock)
        {
            if (!IsCaptureType(bufferType) || (_queueType != 0 && bufferType != _queueType))
            {
                return Errno.EINVAL;
            }
            StopStreamingLocked();
        }
        return 0;
    }

    private void StopStreamingLocked()
    {
        _streaming = false;
        _streamGeneration++;
        _nextDue = long.MaxValue;
        _queued.Clear();
        for (int i = 0; i < _bufferCount; i++)
        {
            // STREAMOFF returns every buffer to the application, including one still being filled: its fill then
            // completes silently (the completion sees the state changed) and it may be queued again at once.
            if (_buffers[i].State != BufferState.Dequeued)
            {
                _buffers[i].State = BufferState.Dequeued;
            }
            _buffers[i].Prepared = false;
        }
        _host.DropPendingDqbufs();
        WaitForGuestPageFillLocked();
    }

    // Once STREAMOFF (or CLOSE) answers, the guest may reuse the pages of every SHARED_PAGES buffer, so a fill still
    // writing into them must end first, as a capture driver's stop_streaming waits for its DMA. A fill is one frame
    // of rendering; the cap only guards against a stuck frame clock (the copied lists keep the writes in guest RAM).
    private void WaitForGuestPageFillLocked()
    {
        long deadline = Environment.TickCount64 + 1000;
        while (_guestPageFillInFlight && _fillThreadId != Environment.CurrentManagedThreadId)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0 || !Monitor.Wait(_lock, (int)left))
            {
                return;
            }
        }
    }

    public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer)
    {
        lock (_lock)
        {
            for (int i = 0; i < _bufferCount; i++)
            {
                foreach (MmapBuffer? plane in _buffers[i].Planes)
                {
                    if (plane is not null && plane.Offset == memOffset)
                    {
                        buffer = plane;
                        return 0;
                    }
                }
            }
        }
        buffer = null;
        return Errno.EINVAL;
    }

    // ---- frame production ----

    public override long NextFrameDeadline
    {
        get
        {
            lock (_lock)
            {
                return _streaming && _queued.Count > 0 ? _nextDue : long.MaxValue;
            }
        }
    }

    public override void ProduceFrames(long now)
    {
        CaptureBuffer b;
        int index, generation;
        uint sequence, width, height;
        PixelFormatInfo format;
        lock (_lock)
        {
            if (!_streaming || _queued.Count == 0 || now < _nextDue)
            {
                return;
            }
            index = _queued.Dequeue();
            b = _buffers[index];
            b.State = BufferState.Filling;
            generation = _streamGeneration;
            sequence = _sequence++;
            format = DeviceFormat; // S_FMT is refused while buffers exist, so they match it
            width = DeviceWidth;
            height = DeviceHeight;
            // Pace to the interval; after a stall (no buffer queued in time) restart the clock instead of bursting.
            _nextDue += FrameInterval;
            if (_nextDue < now - FrameInterval)
            {
                _nextDue = now + FrameInterval;
            }
            for (int p = 0; p < b.PlaneCount; p++)
            {
                b.Filling[p] = b.Planes[p] is { } plane && plane.TryAddReference() ? plane : null;
                _fillSegments[p].Clear();
                _fillSegments[p].AddRange(b.Segments[p]);
            }
            _guestPageFillInFlight = _memory == V4l2Memory.UserPtr;
            _fillThreadId = Environment.CurrentManagedThreadId;
        }

        TestPatternControls controls = _backend.Controls;
        long timestamp = Stopwatch.GetTimestamp();
        try
        {
            _backend.Options.FillStarting?.Invoke();
            Fill(b, format, width, height, sequence, controls);
            if (_host.FrameObserver is { } observer)
            {
                ReportFrame(observer, b, format, width, height, sequence);
            }
        }
        finally
        {
            for (int p = 0; p < b.PlaneCount; p++)
            {
                b.Filling[p]?.Release();
                b.Filling[p] = null;
            }
            lock (_lock)
            {
                _guestPageFillInFlight = false;
                Monitor.PulseAll(_lock);
            }
            _backend.Options.FillEnded?.Invoke();
        }

        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        lock (_lock)
        {
            if (b.State != BufferState.Filling)
            {
                return;
            }
            b.State = BufferState.Dequeued;
            if (generation != _streamGeneration || _closed || index >= _bufferCount || _buffers[index] != b)
            {
                return;
            }
            b.BytesUsed = TotalLength(b);
            var buffer = default(V4l2Buffer);
            DescribeBuffer(index, b, ref buffer, planes);
            // Raw frames: no KEYFRAME/PFRAME/BFRAME flags (those describe compressed streams; v4l2-ctl prints them).
            buffer.Flags = V4l2Const.BufFlagTimestampMonotonic;
            buffer.Sequence = sequence;
            long usec = (long)((double)timestamp * 1_000_000 / Stopwatch.Frequency);
            buffer.TimestampSec = usec / 1_000_000;
            buffer.TimestampUsec = usec % 1_000_000;
            // The driver keeps its own m union; send 0 rather than offsets (recommended by the spec).
            buffer.M = 0;
            for (int p = 0; p < b.PlaneCount; p++)
            {
                planes[p].M = 0;
                planes[p].BytesUsed = b.PlaneLength[p];
            }
            _host.SendDqbuf(buffer, IsMplane(_queueType) ? planes[..b.PlaneCount] : default);
        }
    }

    private void Fill(CaptureBuffer b, PixelFormatInfo format, uint width, uint height, uint sequence, TestPatternControls controls)
    {
        var dst = new FrameDestination();
        if (_memory == V4l2Memory.Mmap && b.Rendered && _backend.Options.StaticImage)
        {
            return;
        }
        if (_memory == V4l2Memory.Mmap)
        {
            // The buffer may have been released while we were not holding the lock; then it has no planes to fill.
            if (b.Filling[0] is not { } p0)
            {
                return;
            }
            dst.Plane0 = new PlaneDestination(p0.GetSpan());
            if (b.PlaneCount > 1 && b.Filling[1] is { } p1) { dst.Plane1 = new PlaneDestination(p1.GetSpan()); }
            if (b.PlaneCount > 2 && b.Filling[2] is { } p2) { dst.Plane2 = new PlaneDestination(p2.GetSpan()); }
        }
        else
        {
            GuestMemory memory = _host.GuestMemory!;
            dst.Plane0 = new PlaneDestination(memory, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_fillSegments[0]));
            if (b.PlaneCount > 1) { dst.Plane1 = new PlaneDestination(memory, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_fillSegments[1])); }
            if (b.PlaneCount > 2) { dst.Plane2 = new PlaneDestination(memory, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_fillSegments[2])); }
        }
        _renderer.Render(format, (int)width, (int)height, sequence, controls, ref dst);
        b.Rendered = true;
    }

    // Shows a filled MMAP buffer to the observer while the fill still holds its planes' references (frames in
    // guest pages are scattered and not reported).
    private void ReportFrame(IFrameObserver observer, CaptureBuffer b, PixelFormatInfo format, uint width, uint height, uint sequence)
    {
        if (_memory != V4l2Memory.Mmap || b.Filling[0] is not { } p0)
        {
            return;
        }
        ReadOnlySpan<byte> plane1 = b.PlaneCount > 1 && b.Filling[1] is { } p1 ? p1.GetSpan() : default;
        ReadOnlySpan<byte> plane2 = b.PlaneCount > 2 && b.Filling[2] is { } p2 ? p2.GetSpan() : default;
        var frame = new CompletedFrame(_host.SessionId, sequence, FrameLayout.ForTestPattern(format.FourCc, (int)width, (int)height),
            p0.GetSpan(), plane1, plane2);
        observer.FrameCompleted(frame);
    }

    // ---- controls ----

    public override int QueryControl(ref V4l2QueryCtrl query)
    {
        int i = FindForQuery(query.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        TestPatternBackend.ControlInfo c = TestPatternBackend.ControlTable[i];
        query = default;
        query.Id = c.Id;
        query.Type = c.Type;
        query.Minimum = c.Min;
        query.Maximum = c.Max;
        query.Step = c.Step;
        query.DefaultValue = c.Default;
        query.Flags = c.Flags;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], c.Name);
        }
        return 0;
    }

    public override int QueryExtControl(ref V4l2QueryExtCtrl query)
    {
        int i = FindForQuery(query.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        TestPatternBackend.ControlInfo c = TestPatternBackend.ControlTable[i];
        query = default;
        query.Id = c.Id;
        query.Type = c.Type;
        query.Minimum = c.Min;
        query.Maximum = c.Max;
        query.Step = (ulong)c.Step;
        query.DefaultValue = c.Default;
        query.Flags = c.Flags;
        query.ElemSize = 4;
        query.Elems = 1;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], c.Name);
        }
        return 0;
    }

    // Exact id, or with NEXT_CTRL the first control whose id is greater. Only NEXT_COMPOUND: none exist.
    private static int FindForQuery(uint id)
    {
        bool next = (id & V4l2Const.CtrlFlagNextCtrl) != 0;
        bool nextCompound = (id & V4l2Const.CtrlFlagNextCompound) != 0;
        uint bare = id & V4l2Const.CtrlIdMask;
        if (!next && !nextCompound)
        {
            return TestPatternBackend.FindControl(id);
        }
        if (!next)
        {
            return -1;
        }
        for (int i = 0; i < TestPatternBackend.ControlTable.Length; i++)
        {
            if (TestPatternBackend.ControlTable[i].Id > bare)
            {
                return i;
            }
        }
        return -1;
    }

    public override int QueryMenu(ref V4l2QueryMenu menu)
    {
        if (menu.Id != V4l2Const.CidTestPattern || menu.Index >= TestPatternBackend.PatternMenu.Length)
        {
            return Errno.EINVAL;
        }
        uint id = menu.Id, index = menu.Index;
        menu = default;
        menu.Id = id;
        menu.Index = index;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref menu.Name[0], TestPatternBackend.PatternMenu[index]);
        }
        return 0;
    }

    public override int GetControl(ref V4l2Control control)
    {
        int i = TestPatternBackend.FindControl(control.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        if (TestPatternBackend.IsClassControl(TestPatternBackend.ControlTable[i]))
        {
            return Errno.EACCES;
        }
        control.Value = _backend.GetControlValue(control.Id);
        return 0;
    }

    public override int SetControl(ref V4l2Control control)
    {
        int i = TestPatternBackend.FindControl(control.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        int value = control.Value;
        int status = TestPatternBackend.ValidateControlValue(i, ref value);
        if (status != 0)
        {
            return status;
        }
        _backend.SetControlValue(control.Id, value, this);
        control.Value = value;
        return 0;
    }

    public override int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls)
    {
        uint which = header.Which;
        bool isGet = code == V4l2IoctlCode.GExtCtrls;
        bool isSet = code == V4l2IoctlCode.SExtCtrls;
        bool defaults = which == V4l2Const.CtrlWhichDefVal;
        if (which == V4l2Const.CtrlWhichRequestVal || (defaults && !isGet))
        {
            header.ErrorIdx = header.Count;
            return Errno.EINVAL;
        }
        bool classFilter = which != V4l2Const.CtrlWhichCurVal && !defaults;
        // error_idx as the kernel's control framework reports it: G_EXT_CTRLS always answers count (nothing was
        // read), S_EXT_CTRLS answers count for a validation failure (nothing was written), TRY_EXT_CTRLS names
        // the offending control.
        uint count = header.Count;
        uint FailedAt(int k) => isGet || isSet ? count : (uint)k;
        // Validate every control first, so S_EXT_CTRLS is all-or-nothing.
        for (int k = 0; k < controls.Length; k++)
        {
            int i = TestPatternBackend.FindControl(controls[k].Id);
            if (i < 0 || (classFilter && (controls[k].Id & 0x0FFF0000) != which))
            {
                header.ErrorIdx = FailedAt(k);
                return Errno.EINVAL;
            }
            if (TestPatternBackend.IsClassControl(TestPatternBackend.ControlTable[i]))
            {
                // Class controls are both write-only (nothing to get) and read-only (nothing to set).
                header.ErrorIdx = FailedAt(k);
                return Errno.EACCES;
            }
            if (!isGet)
            {
                int value = controls[k].Value;
                int status = TestPatternBackend.ValidateControlValue(i, ref value);
                if (status != 0)
                {
                    header.ErrorIdx = FailedAt(k);
                    return status;
                }
                controls[k].Value = value;
            }
        }
        for (int k = 0; k < controls.Length; k++)
        {
            int i = TestPatternBackend.FindControl(controls[k].Id);
            if (isGet)
            {
                controls[k].Value64 = 0;
                controls[k].Value = defaults ? TestPatternBackend.ControlTable[i].Default : _backend.GetControlValue(controls[k].Id);
            }
            else if (isSet)
            {
                _backend.SetControlValue(controls[k].Id, controls[k].Value, this);
            }
        }
        header.ErrorIdx = 0;
        return 0;
    }

    // ---- events ----

    public override int SubscribeEvent(in V4l2EventSubscription subscription)
    {
        switch (subscription.Type)
        {
            case V4l2Const.EventCtrl:
            {
                int i = TestPatternBackend.FindControl(subscription.Id);
                if (i < 0)
                {
                    return Errno.EINVAL;
                }
                lock (_lock)
                {
                    AddSubscriptionLocked(subscription);
                }
                if ((subscription.Flags & V4l2Const.EventSubFlSendInitial) != 0 && !TestPatternBackend.IsClassControl(TestPatternBackend.ControlTable[i]))
                {
                    SendControlEvent(subscription.Id, _backend.GetControlValue(subscription.Id),
                        V4l2Const.EventCtrlChValue | V4l2Const.EventCtrlChFlags | V4l2Const.EventCtrlChRange);
                }
                return 0;
            }
            case V4l2Const.EventSourceChange:
                if (subscription.Id != 0)
                {
                    return Errno.EINVAL;
                }
                lock (_lock)
                {
                    AddSubscriptionLocked(subscription);
                }
                return 0;
            default:
                return Errno.EINVAL;
        }
    }

    private void AddSubscriptionLocked(in V4l2EventSubscription s)
    {
        for (int i = 0; i < _subscriptions.Count; i++)
        {
            if (_subscriptions[i].Type == s.Type && _subscriptions[i].Id == s.Id)
            {
                _subscriptions[i] = (s.Type, s.Id, s.Flags);
                return;
            }
        }
        _subscriptions.Add((s.Type, s.Id, s.Flags));
    }

    public override int UnsubscribeEvent(in V4l2EventSubscription subscription)
    {
        lock (_lock)
        {
            if (subscription.Type == V4l2Const.EventAll)
            {
                _subscriptions.Clear();
                return 0;
            }
            for (int i = 0; i < _subscriptions.Count; i++)
            {
                if (_subscriptions[i].Type == subscription.Type && _subscriptions[i].Id == subscription.Id)
                {
                    _subscriptions.RemoveAt(i);
                    break;
                }
            }
        }
        return 0;
    }

    internal void NotifyControlChanged(uint id, int value, TestPatternSession setter)
    {
        const uint AllowFeedback = 0x2;
        bool send = false;
        lock (_lock)
        {
            foreach ((uint type, uint sid, uint flags) in _subscriptions)
            {
                if (type == V4l2Const.EventCtrl && sid == id && (setter != this || (flags & AllowFeedback) != 0))
                {
                    send = true;
                }
            }
        }
        if (send)
        {
            SendControlEvent(id, value, V4l2Const.EventCtrlChValue);
        }
    }

    private void SendControlEvent(uint id, int value, uint changes)
    {
        int i = TestPatternBackend.FindControl(id);
        TestPatternBackend.ControlInfo c = TestPatternBackend.ControlTable[i];
        var e = new V4l2Event
        {
            Type = V4l2Const.EventCtrl,
            Id = id,
            CtrlChanges = changes,
            CtrlType = c.Type,
            CtrlFlags = c.Flags,
            CtrlMinimum = c.Min,
            CtrlMaximum = c.Max,
            CtrlStep = c.Step,
            CtrlDefaultValue = c.Default,
        };
        e.CtrlValue64 = 0;
        e.CtrlValue = value;
        _host.SendEvent(e);
    }

    public override void Dispose()
    {
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            StopStreamingLocked();
            FreeBuffersLocked();
            _subscriptions.Clear();
        }
        _backend.Closed(this);
    }
}
