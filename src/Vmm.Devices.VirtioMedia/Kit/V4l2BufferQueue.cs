using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// One session's buffer queue, as vb2 keeps it: REQBUFS, CREATE_BUFS, QUERYBUF, PREPARE_BUF, QBUF and STREAMON/OFF
/// for MMAP buffers (carved out of region 0) and SHARED_PAGES (USERPTR) buffers (validated guest scatter lists), and
/// DQBUF through events once a producer has filled a buffer. It owns the queue-type and memory checks and the buffer
/// states; its user says how large the planes are. Ioctls arrive on the command thread; the producer takes and
/// completes buffers on its own thread (<see cref="TryStartFill"/>, <see cref="EndFill"/>, <see cref="CompleteFill"/>)
/// and writes pixels without holding the queue's lock, so a slow frame never delays a command.
/// </summary>
public sealed class V4l2BufferQueue
{
    /// <summary>Most memory planes a buffer of this queue has (three-plane YUV is the largest raw layout offered).</summary>
    public const int MaxMemoryPlanes = 3;

    // Largest plane CREATE_BUFS may ask for (a 3840×2160 RGB24 frame is 24 MiB).
    private const uint MaxPlaneBytes = 256u << 20;

    // Offsets of max_num_buffers in v4l2_create_buffers and of flags in v4l2_requestbuffers; everything from there to
    // the end is output-only and zero for this queue.
    private const int ReservedCreateBuffersOffset = 232, ReservedRequestBuffersOffset = 16;

    private const uint BufferCapabilities =
        V4l2Const.BufCapSupportsMmap | V4l2Const.BufCapSupportsUserPtr | V4l2Const.BufCapSupportsOrphanedBufs;

    private readonly IMediaSessionHost _host;
    private readonly V4l2QueueOwnership _ownership;
    private readonly object _lock = new();
    // The scatter lists of the buffer being filled, copied when the fill takes it: a QBUF that rewrites the buffer's
    // lists meanwhile (after STREAMOFF) cannot redirect pixels. Only the producer's thread touches them.
    private readonly List<GuestSegment>[] _fillSegments = [[], [], []];
    // A fill into guest pages is running (set and cleared under _lock, pulsed when it ends); STREAMOFF waits for it.
    private bool _guestPageFillInFlight;
    private int _fillThreadId;

    private readonly Slot[] _buffers = new Slot[V4l2Const.VideoMaxFrame];
    private int _bufferCount;
    private uint _queueType;           // the buffer type the buffers were requested for, 0 when none
    private V4l2Memory _memory;
    private readonly Queue<int> _queued = new(V4l2Const.VideoMaxFrame);
    // A buffer a consumer took and gave back (ReturnToQueue): it is taken again first, or -1.
    private int _returned = -1;
    private bool _streaming;
    private int _streamGeneration;
    private uint _sequence;
    private long _nextDue = long.MaxValue;
    private bool _closed;

    internal enum BufferState { Dequeued, Queued, Filling }

    internal sealed class Slot
    {
        public readonly MmapBuffer?[] Planes = new MmapBuffer?[MaxMemoryPlanes];
        // References held by the producer while it writes pixels; only that thread touches this array, so the owner
        // may release Planes (REQBUFS(0), CLOSE) meanwhile without freeing memory that is being written.
        public readonly MmapBuffer?[] Filling = new MmapBuffer?[MaxMemoryPlanes];
        public readonly List<GuestSegment>[] Segments = [[], [], []];
        public readonly uint[] PlaneLength = new uint[MaxMemoryPlanes];
        public int PlaneCount;
        public BufferState State;
        // PREPARE_BUF done while dequeued; consumed by the next QBUF (vb2 semantics), cleared by STREAMOFF.
        public bool Prepared;
        // Bytes of each plane that hold data: what the application queued (OUTPUT), what the producer wrote
        // (CAPTURE, once done); and where that data starts in the plane (OUTPUT's data_offset).
        public readonly uint[] PlaneBytesUsed = new uint[MaxMemoryPlanes];
        public readonly uint[] PlaneDataOffset = new uint[MaxMemoryPlanes];
        // The buffer's timestamp and the rest of what a memory-to-memory device copies from an OUTPUT buffer to the
        // CAPTURE buffer made from it (timecode, TIMECODE flag, timestamp source); a camera's capture time.
        public V4l2BufferMetadata Metadata;
        // LAST/ERROR of the completed buffer, reported by QUERYBUF until it is queued again.
        public uint DoneFlags;
        // The producer has filled this MMAP buffer before, so its memory still holds that frame.
        public bool HoldsFrame;
    }

    private readonly Action? _workArrived;

    /// <summary>A queue for buffers of <paramref name="bufferType"/>, sharing <paramref name="ownership"/> with the
    /// other queues of its kind: the device's one ownership for a capture device whose sessions share the queue,
    /// a queue's own for a memory-to-memory session. <paramref name="timestampCopy"/>: buffers carry the
    /// application's timestamps (V4L2_BUF_FLAG_TIMESTAMP_COPY, memory-to-memory) rather than the capture time.
    /// <paramref name="workArrived"/> runs after a QBUF or STREAMON (outside the queue's lock); by default it wakes
    /// the device's frame clock.</summary>
    public V4l2BufferQueue(uint bufferType, IMediaSessionHost host, V4l2QueueOwnership ownership, bool timestampCopy = false,
        Action? workArrived = null)
    {
        BufferType = bufferType;
        _host = host;
        _ownership = ownership;
        _timestampFlag = timestampCopy ? V4l2Const.BufFlagTimestampCopy : V4l2Const.BufFlagTimestampMonotonic;
        _workArrived = workArrived;
        IsOutput = bufferType is (uint)V4l2BufferType.VideoOutput or (uint)V4l2BufferType.VideoOutputMplane;
    }

    private readonly uint _timestampFlag;

    /// <summary>The buffer type this queue serves; every other type is EINVAL.</summary>
    public uint BufferType { get; }

    /// <summary>True for an OUTPUT queue: the application fills its buffers and says how many bytes they hold.</summary>
    public bool IsOutput { get; }

    /// <summary>True between STREAMON and STREAMOFF.</summary>
    public bool IsStreaming
    {
        get
        {
            lock (_lock)
            {
                return _streaming;
            }
        }
    }

    /// <summary>True while this queue has buffers allocated.</summary>
    public bool HasBuffers
    {
        get
        {
            lock (_lock)
            {
                return _bufferCount > 0;
            }
        }
    }

    /// <summary>The size of each memory plane of this queue's buffers (0 where it has none).</summary>
    public uint PlaneLength(int plane)
    {
        lock (_lock)
        {
            return _bufferCount == 0 || plane >= _buffers[0].PlaneCount ? 0 : MinPlaneLengthLocked(plane);
        }
    }

    // CREATE_BUFS may add larger buffers; a consumer must fit the smallest.
    private uint MinPlaneLengthLocked(int plane)
    {
        uint min = uint.MaxValue;
        for (int i = 0; i < _bufferCount; i++)
        {
            min = Math.Min(min, _buffers[i].PlaneLength[plane]);
        }
        return min;
    }

    /// <summary>True when <paramref name="type"/> is this queue's buffer type: the one queue-type check.</summary>
    public bool Accepts(uint type) => type == BufferType;

    /// <summary>The lock that guards the queue; a producer takes it around <see cref="TryStartFill"/> when it must
    /// read state of its own atomically with taking a buffer (it is reentrant).</summary>
    public object SyncRoot => _lock;

    // The user's limit (max-buffers), never above V4L2's VIDEO_MAX_FRAME.
    private int MaxBuffersPerQueue => Math.Min(_host.Limits.MaxBuffersPerQueue, V4l2Const.VideoMaxFrame);

    /// <summary>True while this queue holds buffers or streams, or another handle owns the device's queue: S_FMT
    /// must then be EBUSY, so buffers never change size under a stream.</summary>
    public bool BlocksFormatChange
    {
        get
        {
            lock (_lock)
            {
                return _bufferCount > 0 || _streaming || _ownership.IsOwnedByOther(this);
            }
        }
    }

    /// <summary>True when another handle owns the device's queue (S_PARM is then EBUSY, like S_FMT).</summary>
    public bool IsOwnedByOther => _ownership.IsOwnedByOther(this);

    /// <summary>Frames taken since the last STREAMON.</summary>
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

    /// <summary>REQBUFS: frees this queue's buffers and allocates <c>count</c> new ones of
    /// <paramref name="planeSizes"/> (one entry per memory plane of the current format).</summary>
    public int RequestBuffers(ref V4l2RequestBuffers request, ReadOnlySpan<uint> planeSizes)
    {
        int status = CheckMemory(request.Type, request.Memory);
        if (status != 0)
        {
            return status;
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
            if (count > 0 ? !_ownership.TryTake(this) : _ownership.IsOwnedByOther(this))
            {
                return Errno.EBUSY;
            }
            FreeBuffersLocked();
            if (count == 0)
            {
                _ownership.Release(this);
                _host.DropPendingDqbufs(BufferType);
            }
            else
            {
                status = AllocateLocked((int)count, (V4l2Memory)request.Memory, request.Type, planeSizes);
                if (status != 0)
                {
                    _ownership.Release(this);
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

    /// <summary>CREATE_BUFS: appends buffers at least as large as the request's sizeimage, which must itself cover
    /// <paramref name="minimumPlaneSizes"/> (the current format's planes).</summary>
    public int CreateBuffers(ref V4l2CreateBuffers create, ReadOnlySpan<uint> minimumPlaneSizes)
    {
        int status = CheckMemory(create.Format.Type, create.Memory);
        if (status != 0)
        {
            return status;
        }
        var memory = (V4l2Memory)create.Memory;
        lock (_lock)
        {
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
            if (!_ownership.TryTake(this))
            {
                return Errno.EBUSY;
            }
            int before = _bufferCount;
            status = CreateBuffersOwnedLocked(ref create, memory, minimumPlaneSizes);
            // vb2 makes a handle the owner only when its call succeeds: every failure that left this session without
            // buffers gives the queue back, or one refused request would lock every other session out.
            if (status != 0)
            {
                if (_bufferCount == 0)
                {
                    _ownership.Release(this);
                }
                return status;
            }
            create.Count = (uint)(_bufferCount - before);
        }
        return 0;
    }

    // Type and memory of REQBUFS/CREATE_BUFS: this queue's type; MMAP (when region 0 is a memfd) or USERPTR.
    private int CheckMemory(uint type, uint memory)
    {
        if (!Accepts(type) || memory is not ((uint)V4l2Memory.Mmap or (uint)V4l2Memory.UserPtr))
        {
            return Errno.EINVAL;
        }
        return memory == (uint)V4l2Memory.Mmap && _host.Shm is null ? Errno.EINVAL : 0;
    }

    // CREATE_BUFS once this session owns the queue: the checks vb2 makes after the ownership check, then the allocation.
    private int CreateBuffersOwnedLocked(ref V4l2CreateBuffers create, V4l2Memory memory, ReadOnlySpan<uint> minimum)
    {
        bool mplane = V4l2Formats.IsMultiPlanar(create.Format.Type);
        // As vb2_ioctl_create_bufs: after the query (count 0) and the ownership check, the plane count must be
        // given and match, and no plane may be smaller than the current format needs (0 included).
        if (!RequestedSizesFit(create.Format, mplane, minimum))
        {
            return Errno.EINVAL;
        }
        int wanted = (int)Math.Min(create.Count, (uint)Math.Max(0, MaxBuffersPerQueue - _bufferCount));
        if (wanted == 0)
        {
            return Errno.ENOBUFS;
        }
        // Buffers are at least as large as the request's sizeimage (an application may ask for bigger ones).
        Span<uint> planeSizes = stackalloc uint[MaxMemoryPlanes];
        planeSizes = planeSizes[..minimum.Length];
        for (int p = 0; p < minimum.Length; p++)
        {
            uint requested = mplane ? create.Format.PixMp.PlaneFmt(p).SizeImage : p == 0 ? create.Format.Pix.SizeImage : 0;
            if (requested > MaxPlaneBytes)
            {
                return Errno.EINVAL;
            }
            planeSizes[p] = Math.Max(requested, minimum[p]);
        }
        return AllocateLocked(wanted, memory, create.Format.Type, planeSizes, append: true);
    }

    private static bool RequestedSizesFit(in V4l2Format format, bool mplane, ReadOnlySpan<uint> minimum)
    {
        if (!mplane)
        {
            return format.Pix.SizeImage >= minimum[0];
        }
        if (format.PixMp.NumPlanes != minimum.Length)
        {
            return false;
        }
        for (int p = 0; p < minimum.Length; p++)
        {
            if (format.PixMp.PlaneFmt(p).SizeImage < minimum[p])
            {
                return false;
            }
        }
        return true;
    }

    private int AllocateLocked(int count, V4l2Memory memory, uint type, ReadOnlySpan<uint> planeSizes, bool append = false)
    {
        if (!append)
        {
            _bufferCount = 0;
        }
        int start = _bufferCount;
        for (int i = start; i < start + count; i++)
        {
            var b = new Slot { PlaneCount = planeSizes.Length };
            bool ok = true;
            for (int p = 0; p < planeSizes.Length; p++)
            {
                b.PlaneLength[p] = planeSizes[p];
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

    private static void ReleasePlanes(Slot b)
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
        _returned = -1;
    }

    // The checks QUERYBUF, PREPARE_BUF and QBUF share: a buffer of this queue, and room for its planes.
    private int CheckBuffer(in V4l2Buffer buffer, int planeRoom, out Slot b)
    {
        b = null!;
        if (_bufferCount == 0 || buffer.Type != _queueType || buffer.Index >= _bufferCount)
        {
            return Errno.EINVAL;
        }
        b = _buffers[buffer.Index];
        return V4l2Formats.IsMultiPlanar(_queueType) && planeRoom < b.PlaneCount ? Errno.EINVAL : 0;
    }

    private void DescribeBuffer(int index, Slot b, ref V4l2Buffer buffer, Span<V4l2Plane> planes)
    {
        buffer.Index = (uint)index;
        buffer.Type = _queueType;
        buffer.Memory = (uint)_memory;
        buffer.Field = V4l2Const.FieldNone;
        buffer.Flags = _timestampFlag | b.Metadata.CopiedFlags
            | (b.State != BufferState.Dequeued ? V4l2Const.BufFlagQueued : b.Prepared ? V4l2Const.BufFlagPrepared : b.DoneFlags);
        buffer.Sequence = 0;
        buffer.TimestampSec = b.Metadata.TimestampSec;
        buffer.TimestampUsec = b.Metadata.TimestampUsec;
        buffer.Timecode = b.Metadata.Timecode;
        buffer.RequestFd = 0;
        buffer.Reserved2 = 0;
        if (V4l2Formats.IsMultiPlanar(_queueType))
        {
            buffer.BytesUsed = 0;
            buffer.Length = (uint)b.PlaneCount;
            for (int p = 0; p < b.PlaneCount && p < planes.Length; p++)
            {
                planes[p] = default;
                planes[p].Length = b.PlaneLength[p];
                // A queued OUTPUT buffer holds the application's data; a queued CAPTURE buffer holds nothing yet.
                planes[p].BytesUsed = b.State == BufferState.Dequeued || IsOutput ? b.PlaneBytesUsed[p] : 0;
                planes[p].DataOffset = IsOutput ? b.PlaneDataOffset[p] : 0;
                // USERPTR planes answer 0 here; the dispatcher puts the guest's own pointers back for QBUF/PREPARE.
                planes[p].M = _memory == V4l2Memory.Mmap ? b.Planes[p]!.Offset : 0;
            }
        }
        else
        {
            buffer.BytesUsed = TotalBytesUsed(b);
            buffer.Length = b.PlaneLength[0];
            if (_memory == V4l2Memory.Mmap)
            {
                buffer.M = b.Planes[0]!.Offset;
            }
        }
    }

    /// <summary>QUERYBUF.</summary>
    public int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes)
    {
        lock (_lock)
        {
            int status = CheckBuffer(buffer, planes.Length, out Slot b);
            if (status != 0)
            {
                return status;
            }
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        return 0;
    }

    /// <summary>PREPARE_BUF: attaches a USERPTR buffer's pages ahead of its QBUF.</summary>
    public int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        lock (_lock)
        {
            // Only a dequeued, not yet prepared buffer can be prepared (queued or twice: EINVAL, as vb2 answers).
            int status = TakeFromApplicationLocked(buffer, planes, pages, preparing: true, out Slot b);
            if (status == 0 && IsOutput)
            {
                status = TakePayloadLocked(b, buffer, planes);
            }
            if (status != 0)
            {
                return status;
            }
            b.Prepared = true;
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        return 0;
    }

    /// <summary>QBUF: hands a dequeued buffer to the producer.</summary>
    public int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        lock (_lock)
        {
            int status = TakeFromApplicationLocked(buffer, planes, pages, preparing: false, out Slot b);
            if (status != 0)
            {
                return status;
            }
            if (IsOutput)
            {
                // A prepared buffer keeps the payload it was prepared with (vb2 ignores the values QBUF sends).
                status = b.Prepared ? 0 : TakePayloadLocked(b, buffer, planes);
                if (status == 0)
                {
                    status = TakeMetadata(b, buffer);
                }
                if (status != 0)
                {
                    return status;
                }
            }
            b.State = BufferState.Queued;
            b.Prepared = false;
            b.DoneFlags = 0;
            _queued.Enqueue((int)buffer.Index);
            DescribeBuffer((int)buffer.Index, b, ref buffer, planes);
        }
        WorkArrived();
        return 0;
    }

    private void WorkArrived()
    {
        if (_workArrived is { } work)
        {
            work();
        }
        else
        {
            _host.WakeFrameClock();
        }
    }

    // An OUTPUT buffer's payload as vb2 takes it: bytesused per plane (0 means the whole plane, as vb2 still accepts),
    // never beyond the plane, and a data_offset inside it.
    private int TakePayloadLocked(Slot b, in V4l2Buffer buffer, ReadOnlySpan<V4l2Plane> planes)
    {
        bool mplane = V4l2Formats.IsMultiPlanar(_queueType);
        for (int p = 0; p < b.PlaneCount; p++)
        {
            uint used = mplane ? planes[p].BytesUsed : p == 0 ? buffer.BytesUsed : b.PlaneLength[p];
            uint offset = mplane ? planes[p].DataOffset : 0;
            if (used == 0)
            {
                used = b.PlaneLength[p];
            }
            if (used > b.PlaneLength[p] || (offset > 0 && offset >= used))
            {
                return Errno.EINVAL;
            }
            b.PlaneBytesUsed[p] = used;
            b.PlaneDataOffset[p] = offset;
        }
        return 0;
    }

    // What QBUF of an OUTPUT buffer carries besides the payload: its timestamp (a valid timeval), timecode, and the
    // TIMECODE and timestamp-source flags, all given back with the buffer and copied to the CAPTURE buffer made from it.
    private static int TakeMetadata(Slot b, in V4l2Buffer buffer)
    {
        if (buffer.TimestampUsec is < 0 or >= 1_000_000 || buffer.TimestampSec < 0)
        {
            return Errno.EINVAL;
        }
        b.Metadata = new V4l2BufferMetadata(buffer.TimestampSec, buffer.TimestampUsec,
            buffer.Flags & (V4l2Const.BufFlagTimecode | V4l2Const.BufFlagTstampSrcMask), buffer.Timecode);
        return 0;
    }

    // What PREPARE_BUF and QBUF share: a dequeued buffer of this queue's memory (for PREPARE_BUF, one not yet
    // prepared), whose USERPTR pages are attached anew.
    private int TakeFromApplicationLocked(in V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages, bool preparing, out Slot b)
    {
        int status = CheckBuffer(buffer, planes.Length, out b);
        if (status != 0)
        {
            return status;
        }
        if (buffer.Memory != (uint)_memory || b.State != BufferState.Dequeued || (preparing && b.Prepared))
        {
            return Errno.EINVAL;
        }
        return _memory == V4l2Memory.UserPtr ? AttachSharedPages(b, buffer, planes, pages) : 0;
    }

    // Validates the guest's scatter lists against guest RAM and the plane sizes, then keeps them in the buffer.
    private int AttachSharedPages(Slot b, in V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        bool mplane = V4l2Formats.IsMultiPlanar(_queueType);
        GuestMemory? memory = _host.GuestMemory;
        if (memory is null || pages.PlaneCount < (mplane ? b.PlaneCount : 1))
        {
            return Errno.EFAULT;
        }
        // A single-planar buffer is one list covering every memory plane.
        int lists = mplane ? b.PlaneCount : 1;
        for (int p = 0; p < lists; p++)
        {
            uint length = mplane ? planes[p].Length : buffer.Length;
            uint needed = mplane ? b.PlaneLength[p] : TotalLength(b);
            if (length < needed)
            {
                return Errno.EINVAL;
            }
            List<GuestSegment> segments = b.Segments[p];
            segments.Clear();
            foreach (SgEntry e in pages.Plane(p))
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

    private static uint TotalBytesUsed(Slot b)
    {
        uint total = 0;
        for (int p = 0; p < b.PlaneCount; p++)
        {
            total += b.PlaneBytesUsed[p];
        }
        return total;
    }

    private static uint TotalLength(Slot b)
    {
        uint total = 0;
        for (int p = 0; p < b.PlaneCount; p++)
        {
            total += b.PlaneLength[p];
        }
        return total;
    }

    /// <summary>STREAMON: the producer's clock starts now, at sequence 0.</summary>
    public int StreamOn(uint bufferType)
    {
        lock (_lock)
        {
            if (!Accepts(bufferType) || _bufferCount == 0 || bufferType != _queueType)
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
        WorkArrived();
        return 0;
    }

    /// <summary>STREAMOFF: every buffer goes back to the application; returns once no fill writes guest pages.</summary>
    public int StreamOff(uint bufferType)
    {
        lock (_lock)
        {
            if (!Accepts(bufferType) || (_queueType != 0 && bufferType != _queueType))
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
        _returned = -1;
        for (int i = 0; i < _bufferCount; i++)
        {
            // STREAMOFF returns every buffer to the application, including one still being filled: its fill then
            // completes silently (the completion sees the state changed) and it may be queued again at once.
            _buffers[i].State = BufferState.Dequeued;
            _buffers[i].Prepared = false;
        }
        _host.DropPendingDqbufs(BufferType);
        WaitForGuestPageFillLocked();
    }

    // Once STREAMOFF (or CLOSE) answers, the guest may reuse the pages of every SHARED_PAGES buffer, so a fill still
    // writing into them must end first, as a capture driver's stop_streaming waits for its DMA. A fill is one frame
    // of rendering; the cap only guards against a stuck producer (the copied lists keep the writes in guest RAM).
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

    /// <summary>Resolves a CMD_MMAP <c>mem_offset</c> to one of this queue's MMAP planes.</summary>
    public int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer)
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

    /// <summary>When the next buffer is due (<see cref="Stopwatch"/> ticks), or long.MaxValue when none can be filled.</summary>
    public long NextDeadline
    {
        get
        {
            lock (_lock)
            {
                return _streaming && _queued.Count > 0 ? _nextDue : long.MaxValue;
            }
        }
    }

    /// <summary>Takes the oldest queued buffer when streaming and due at <paramref name="now"/>, and moves the
    /// deadline on by <paramref name="interval"/> ticks (0: unpaced). The ticket holds references to the buffer's
    /// memory (MMAP) or a copy of its page lists (USERPTR) until <see cref="EndFill"/>.</summary>
    public bool TryStartFill(long now, long interval, out V4l2FillTicket ticket)
    {
        lock (_lock)
        {
            if (!_streaming || _queued.Count == 0 || now < _nextDue)
            {
                ticket = default;
                return false;
            }
            // Pace to the interval; after a stall (no buffer queued in time) restart the clock instead of bursting.
            _nextDue += interval;
            if (_nextDue < now - interval)
            {
                _nextDue = now + interval;
            }
            ticket = TakeLocked();
            return true;
        }
    }

    /// <summary>Takes the oldest queued buffer when streaming, unpaced (a memory-to-memory device works as soon as
    /// buffers are there): a CAPTURE buffer to fill, or an OUTPUT buffer to read (<see cref="Source"/>). The
    /// ticket holds the buffer as <see cref="TryStartFill"/>'s does, until <see cref="EndFill"/>.</summary>
    public bool TryTakeNext(out V4l2FillTicket ticket)
    {
        lock (_lock)
        {
            if (!_streaming || (_queued.Count == 0 && _returned < 0))
            {
                ticket = default;
                return false;
            }
            ticket = TakeLocked();
            return true;
        }
    }

    /// <summary>Gives a taken buffer back to the head of the queue, untouched (a consumer that cannot go on yet,
    /// e.g. a decoder waiting for new CAPTURE buffers); <see cref="EndFill"/> still follows. No effect when
    /// STREAMOFF or REQBUFS took it back meanwhile (then false).</summary>
    public bool ReturnToQueue(in V4l2FillTicket ticket)
    {
        lock (_lock)
        {
            Slot b = ticket.Buffer;
            if (b.State != BufferState.Filling || ticket.Generation != _streamGeneration || _closed
                || ticket.Index >= _bufferCount || _buffers[ticket.Index] != b)
            {
                return false;
            }
            b.State = BufferState.Queued;
            _returned = ticket.Index;
            _sequence--;
            return true;
        }
    }

    private V4l2FillTicket TakeLocked()
    {
        int index;
        if (_returned >= 0)
        {
            index = _returned;
            _returned = -1;
        }
        else
        {
            index = _queued.Dequeue();
        }
        Slot b = _buffers[index];
        b.State = BufferState.Filling;
        for (int p = 0; p < b.PlaneCount; p++)
        {
            b.Filling[p] = b.Planes[p] is { } plane && plane.TryAddReference() ? plane : null;
            _fillSegments[p].Clear();
            _fillSegments[p].AddRange(b.Segments[p]);
        }
        _guestPageFillInFlight = _memory == V4l2Memory.UserPtr;
        _fillThreadId = Environment.CurrentManagedThreadId;
        return new V4l2FillTicket(b, index, _streamGeneration, _sequence++, _memory == V4l2Memory.Mmap);
    }

    /// <summary>True when the ticket's buffer has memory to write (an MMAP buffer released meanwhile has none).</summary>
    public static bool HasMemory(in V4l2FillTicket ticket) => !ticket.IsMmap || ticket.Buffer.Filling[0] is not null;

    /// <summary>Where memory plane <paramref name="plane"/> of the ticket's buffer is written (empty when the
    /// buffer has no such plane).</summary>
    public PlaneDestination Destination(in V4l2FillTicket ticket, int plane)
    {
        Slot b = ticket.Buffer;
        if (plane >= b.PlaneCount)
        {
            return default;
        }
        if (ticket.IsMmap)
        {
            return b.Filling[plane] is { } p ? new PlaneDestination(p.GetSpan()) : default;
        }
        return new PlaneDestination(_host.GuestMemory!, CollectionsMarshal.AsSpan(_fillSegments[plane]));
    }

    /// <summary>The payload the application queued in plane <paramref name="plane"/> of the ticket's OUTPUT buffer
    /// (from its data_offset to its bytesused): read in place for MMAP, through guest RAM for SHARED_PAGES. Empty
    /// when the buffer has no such plane or its memory was released meanwhile.</summary>
    public PlaneSource Source(scoped in V4l2FillTicket ticket, int plane)
    {
        Slot b = ticket.Buffer;
        if (plane >= b.PlaneCount)
        {
            return default;
        }
        uint offset = b.PlaneDataOffset[plane], used = b.PlaneBytesUsed[plane];
        if (ticket.IsMmap)
        {
            return b.Filling[plane] is { } p ? new PlaneSource(p.GetSpan()[(int)offset..(int)used]) : default;
        }
        return new PlaneSource(_host.GuestMemory!, CollectionsMarshal.AsSpan(_fillSegments[plane]), offset, used - offset);
    }

    /// <summary>What the application gave the ticket's OUTPUT buffer besides its payload (timestamp, timecode).</summary>
    public static V4l2BufferMetadata Metadata(in V4l2FillTicket ticket) => ticket.Buffer.Metadata;

    /// <summary>The filled bytes of MMAP plane <paramref name="plane"/>, for a frame observer (empty for USERPTR
    /// buffers, whose pages are scattered).</summary>
    public static ReadOnlySpan<byte> MmapPlane(in V4l2FillTicket ticket, int plane) =>
        ticket.IsMmap && plane < ticket.Buffer.PlaneCount && ticket.Buffer.Filling[plane] is { } p ? p.GetSpan() : default;

    /// <summary>Whether the ticket's MMAP buffer still holds a frame an earlier fill wrote.</summary>
    public static bool HoldsEarlierFrame(in V4l2FillTicket ticket) => ticket.IsMmap && ticket.Buffer.HoldsFrame;

    /// <summary>Records that the ticket's buffer now holds a frame (producer thread only).</summary>
    public static void MarkFilled(in V4l2FillTicket ticket) => ticket.Buffer.HoldsFrame = true;

    /// <summary>Drops the fill's references and lets a waiting STREAMOFF/CLOSE go on. Always called after
    /// <see cref="TryStartFill"/>, also when the fill failed.</summary>
    public void EndFill(in V4l2FillTicket ticket)
    {
        Slot b = ticket.Buffer;
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
    }

    /// <summary>Sends the DQBUF event of a filled buffer (every plane full, stamped <paramref name="timestamp"/>),
    /// unless STREAMOFF, REQBUFS or CLOSE took it back meanwhile.</summary>
    public void CompleteFill(in V4l2FillTicket ticket, long timestamp)
    {
        long usec = (long)((double)timestamp * 1_000_000 / Stopwatch.Frequency);
        Span<uint> used = stackalloc uint[MaxMemoryPlanes];
        Slot b = ticket.Buffer;
        for (int p = 0; p < b.PlaneCount; p++)
        {
            used[p] = b.PlaneLength[p];
        }
        Complete(ticket, used[..b.PlaneCount], 0, new V4l2BufferMetadata(usec / 1_000_000, usec % 1_000_000, 0, default));
    }

    /// <summary>Sends the DQBUF event of a taken buffer, unless STREAMOFF, REQBUFS or CLOSE took it back meanwhile:
    /// a CAPTURE buffer with <paramref name="bytesUsed"/> per plane (clamped to the plane), an OUTPUT buffer with
    /// the payload it was queued with (<paramref name="bytesUsed"/> is ignored). <paramref name="flags"/> may add
    /// V4L2_BUF_FLAG_LAST and V4L2_BUF_FLAG_ERROR; the buffer carries <paramref name="metadata"/> (for OUTPUT, what it
    /// was queued with). False when the buffer was taken back and nothing was sent.</summary>
    public bool Complete(in V4l2FillTicket ticket, ReadOnlySpan<uint> bytesUsed, uint flags, in V4l2BufferMetadata metadata)
    {
        Slot b = ticket.Buffer;
        int index = ticket.Index;
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        lock (_lock)
        {
            if (b.State != BufferState.Filling)
            {
                return false;
            }
            b.State = BufferState.Dequeued;
            if (ticket.Generation != _streamGeneration || _closed || index >= _bufferCount || _buffers[index] != b)
            {
                return false;
            }
            if (!IsOutput)
            {
                for (int p = 0; p < b.PlaneCount; p++)
                {
                    b.PlaneBytesUsed[p] = p < bytesUsed.Length ? Math.Min(bytesUsed[p], b.PlaneLength[p]) : 0;
                }
            }
            b.Metadata = metadata;
            b.DoneFlags = flags & (V4l2Const.BufFlagLast | V4l2Const.BufFlagError);
            var buffer = default(V4l2Buffer);
            DescribeBuffer(index, b, ref buffer, planes);
            // Raw frames: no KEYFRAME/PFRAME/BFRAME flags (those describe compressed streams; v4l2-ctl prints them).
            buffer.Flags = _timestampFlag | b.Metadata.CopiedFlags | b.DoneFlags;
            buffer.Sequence = ticket.Sequence;
            // The driver keeps its own m union; send 0 rather than offsets (recommended by the spec).
            buffer.M = 0;
            for (int p = 0; p < b.PlaneCount; p++)
            {
                planes[p].M = 0;
            }
            _host.SendDqbuf(buffer, V4l2Formats.IsMultiPlanar(_queueType) ? planes[..b.PlaneCount] : default);
            return true;
        }
    }

    /// <summary>CLOSE: stops streaming, frees the buffers and gives the device's queue back.</summary>
    public void Close()
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
        }
        _ownership.Release(this);
    }
}

/// <summary>What a buffer carries besides its pixels: its timestamp, and the timecode and flags (TIMECODE, timestamp
/// source) that a memory-to-memory device copies from each OUTPUT buffer to the CAPTURE buffer made from it.</summary>
public readonly record struct V4l2BufferMetadata(long TimestampSec, long TimestampUsec, uint CopiedFlags, V4l2Timecode Timecode);
