using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.HostV4l2;

/// <summary>
/// One guest session on its own open() of the host node. Each ioctl is passed to the host with the host's result and
/// errno; what crosses is checked so that no guest value reaches the host as a pointer or file descriptor, and no
/// host pointer reaches the guest:
/// <list type="bullet">
/// <item>the <c>m.planes</c> and <c>controls</c> pointers the host sees point at this thread's copies;</item>
/// <item>SHARED_PAGES (USERPTR) buffers reach the host as the host address of the guest's pages when they are one
/// run of guest RAM (no copy), otherwise as a bounce buffer whose copies are counted;</item>
/// <item>pointer controls get host buffers filled from / copied to the guest's scatter lists;</item>
/// <item>overlay types, DMABUF, requests and EXPBUF are refused (they would carry pointers or fds).</item>
/// </list>
/// Buffer state stays in the host's vb2. A finished buffer or a host event makes the host node readable; the device
/// thread then dequeues in order (<see cref="OnEvent"/>). Commands and host events run on that one thread.
/// </summary>
internal sealed unsafe class HostV4l2Session : MediaBackendSession, IEventHandler
{
    private const uint EpollIn = 0x001, EpollPri = 0x002, EpollOut = 0x004, EpollErr = 0x008, EpollHup = 0x010;
    private const IoctlDirection ReadWrite = IoctlDirection.Read | IoctlDirection.Write;
    private const uint WhichRequestValue = 0x0F010000;
    private const uint BufFlagRequestFd = 0x00800000;
    private const uint BufCapSupportsRequests = 0x8, BufCapSupportsRemoveBufs = 0x100;
    private const uint MaxControlPayload = 1 << 20, MaxControlPayloadTotal = 4 << 20;

    private readonly IMediaSessionHost _host;
    private readonly HostV4l2Node _node;
    private readonly BytesCopiedCounter _copied;
    private readonly ILogger _logger;
    private readonly Dictionary<uint, Queue> _queues = [];
    private readonly Dictionary<uint, (Queue Queue, int Index, int Plane)> _byMemOffset = [];
    private EventLoop.Registration _watch;
    private uint _watchMask;
    private volatile bool _failed;
    // The stall watchdog (read on the frame-clock thread): while a queue streams with buffers queued on the host,
    // the time of the last sign of progress (QBUF, DQBUF, STREAMON); no progress for _stallTicks fails the session.
    private readonly long _stallTicks;
    private readonly uint[] _hiddenControls;
    private int _queuedOnHost;
    private long _lastProgress;
    private volatile bool _streaming;
    // EPOLLERR without HUP while streaming (vb2: a capture queue without QBUF yet, or a queue error): readiness for
    // buffers is not asked for again until the next QBUF, so a level-triggered error cannot spin the device thread.
    private bool _buffersPaused;
    private volatile bool _disposed;

    public HostV4l2Session(IMediaSessionHost host, HostV4l2Node node, BytesCopiedCounter copied, TimeSpan stallTimeout, uint[] hiddenControls,
        ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _hiddenControls = hiddenControls;
        _host = host;
        _node = node;
        _copied = copied;
        _stallTicks = (long)(stallTimeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        // Events (EPOLLPRI) and unplug (EPOLLERR|EPOLLHUP, always reported) are watched from the start; buffer
        // readiness only while streaming, because polling an idle vb2 capture queue for input starts read() emulation.
        _watchMask = EpollPri;
        _watch = host.Watch(node.Handle, _watchMask, this);
    }

    private sealed class Queue(uint type)
    {
        public uint Type { get; } = type;
        public uint Memory { get; set; }
        public bool Streaming { get; set; }
        public List<HostBuffer> Buffers { get; } = [];
    }

    private sealed class HostBuffer
    {
        public readonly uint[] MemOffset = new uint[V4l2Const.VideoMaxPlanes];
        public readonly uint[] Length = new uint[V4l2Const.VideoMaxPlanes];
        public readonly MmapBuffer?[] Mapped = new MmapBuffer?[V4l2Const.VideoMaxPlanes];
        public readonly Bounce?[] Bounces = new Bounce?[V4l2Const.VideoMaxPlanes];
        public int Planes;
    }

    // A host buffer standing in for guest pages that are not one run of guest RAM, and the guest's scatter list to
    // copy a captured frame back to.
    private sealed class Bounce(nint address, uint length) : IDisposable
    {
        public nint Address { get; } = address;
        public uint Length { get; } = length;
        public SgEntry[] Entries { get; set; } = [];
        public int EntryCount { get; set; }

        public void Dispose() => NativeMemory.AlignedFree((void*)Address);
    }

    private static bool IsMultiPlanar(uint type) =>
        type is (uint)V4l2BufferType.VideoCaptureMplane or (uint)V4l2BufferType.VideoOutputMplane;

    private static bool IsOutput(uint type) =>
        type is (uint)V4l2BufferType.VideoOutput or (uint)V4l2BufferType.VideoOutputMplane or (uint)V4l2BufferType.VbiOutput
            or (uint)V4l2BufferType.SlicedVbiOutput or (uint)V4l2BufferType.SdrOutput or (uint)V4l2BufferType.MetaOutput;

    // Overlay formats hold user pointers (clips, bitmap); unknown types are not passed on.
    private static bool IsPassableType(uint type) =>
        type is >= (uint)V4l2BufferType.VideoCapture and <= (uint)V4l2BufferType.MetaOutput
            and not (uint)V4l2BufferType.VideoOverlay and not (uint)V4l2BufferType.VideoOutputOverlay;

    private static bool IsPassableMemory(uint memory) => memory is (uint)V4l2Memory.Mmap or (uint)V4l2Memory.UserPtr;

    private int Pass<T>(V4l2IoctlCode code, ref T arg) where T : unmanaged => Traced(code, _node.Ioctl(code, ReadWrite, ref arg));

    private int Traced(V4l2IoctlCode code, int status)
    {
        // At debug level, every host ioctl that fails, with its errno: what a guest-side failure came from.
        if (status != 0 && status != Errno.EAGAIN)
        {
            MediaLog.HostIoctlFailed(_logger, _node.Path, _host.SessionId, code, status);
        }
        return status;
    }

    // ---- formats, parameters, inputs, controls, selection: straight through ----

    public override int EnumFormat(ref V4l2FmtDesc desc) => IsPassableType(desc.Type) ? Pass(V4l2IoctlCode.EnumFmt, ref desc) : Errno.EINVAL;
    public override int GetFormat(ref V4l2Format format) => IsPassableType(format.Type) ? Pass(V4l2IoctlCode.GFmt, ref format) : Errno.EINVAL;
    public override int SetFormat(ref V4l2Format format) => IsPassableType(format.Type) ? Pass(V4l2IoctlCode.SFmt, ref format) : Errno.EINVAL;
    public override int TryFormat(ref V4l2Format format) => IsPassableType(format.Type) ? Pass(V4l2IoctlCode.TryFmt, ref format) : Errno.EINVAL;
    public override int EnumFrameSizes(ref V4l2FrmSizeEnum sizes) => Pass(V4l2IoctlCode.EnumFrameSizes, ref sizes);
    public override int EnumFrameIntervals(ref V4l2FrmIvalEnum intervals) => Pass(V4l2IoctlCode.EnumFrameIntervals, ref intervals);
    public override int GetParm(ref V4l2StreamParm parm) => StreamParm(V4l2IoctlCode.GParm, ref parm);
    public override int SetParm(ref V4l2StreamParm parm) => StreamParm(V4l2IoctlCode.SParm, ref parm);

    // read()/write() are not proxied (the guest sees no V4L2_CAP_READWRITE), so the host's read/write buffer count,
    // at the same offset for capture and output, is not the guest's.
    private int StreamParm(V4l2IoctlCode code, ref V4l2StreamParm parm)
    {
        if (!IsPassableType(parm.Type))
        {
            return Errno.EINVAL;
        }
        parm.ReadBuffers = 0;
        int status = Pass(code, ref parm);
        parm.ReadBuffers = 0;
        return status;
    }
    public override int EnumInput(ref V4l2Input input) => Pass(V4l2IoctlCode.EnumInput, ref input);

    public override int GetInput(out uint index)
    {
        index = 0;
        return _node.Ioctl(V4l2IoctlCode.GInput, IoctlDirection.Read, ref index);
    }

    public override int SetInput(ref uint index) => Pass(V4l2IoctlCode.SInput, ref index);
    // Hidden controls (the spec's hide= option) do not exist for the guest: enumeration steps over them and every
    // other use answers EINVAL, as for an unknown id.
    private bool IsHidden(uint id) => _hiddenControls.Length > 0 && Array.IndexOf(_hiddenControls, id & ~(V4l2Const.CtrlFlagNextCtrl | V4l2Const.CtrlFlagNextCompound)) >= 0;

    public override int QueryControl(ref V4l2QueryCtrl query) => QuerySkippingHidden(V4l2IoctlCode.QueryCtrl, ref query);

    public override int QueryExtControl(ref V4l2QueryExtCtrl query) => QuerySkippingHidden(V4l2IoctlCode.QueryExtCtrl, ref query);

    // QUERYCTRL and QUERY_EXT_CTRL both start with the control id (the NEXT flags included when enumerating).
    private int QuerySkippingHidden<T>(V4l2IoctlCode code, ref T query) where T : unmanaged
    {
        uint next = Unsafe.As<T, uint>(ref query) & (V4l2Const.CtrlFlagNextCtrl | V4l2Const.CtrlFlagNextCompound);
        if (next == 0 && IsHidden(Unsafe.As<T, uint>(ref query)))
        {
            return Errno.EINVAL;
        }
        while (true)
        {
            int status = Pass(code, ref query);
            uint id = Unsafe.As<T, uint>(ref query);
            if (status != 0 || !IsHidden(id))
            {
                return status;
            }
            query = default;
            Unsafe.As<T, uint>(ref query) = id | next;
        }
    }

    public override int QueryMenu(ref V4l2QueryMenu menu) => IsHidden(menu.Id) ? Errno.EINVAL : Pass(V4l2IoctlCode.QueryMenu, ref menu);
    public override int GetControl(ref V4l2Control control) => IsHidden(control.Id) ? Errno.EINVAL : Pass(V4l2IoctlCode.GCtrl, ref control);
    public override int SetControl(ref V4l2Control control) => IsHidden(control.Id) ? Errno.EINVAL : Pass(V4l2IoctlCode.SCtrl, ref control);
    public override int GetSelection(ref V4l2Selection selection) => Pass(V4l2IoctlCode.GSelection, ref selection);
    public override int SetSelection(ref V4l2Selection selection) => Pass(V4l2IoctlCode.SSelection, ref selection);

    // Flat structures: the host reads and writes exactly the kernel's size, in the kernel's direction.
    public override int PlainIoctl(V4l2IoctlCode code, IoctlDirection direction, Span<byte> payload) =>
        _node.Ioctl(code, direction, payload);

    public override int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls) =>
        ExtControls(code, ref header, controls, default);

    public override int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls, in SharedPagesLists payloads)
    {
        if (header.Which == WhichRequestValue)
        {
            return Errno.EINVAL; // request_fd would name a descriptor of this process
        }
        for (int i = 0; i < controls.Length; i++)
        {
            if (IsHidden(controls[i].Id))
            {
                header.ErrorIdx = code == V4l2IoctlCode.GExtCtrls ? (uint)i : header.Count; // validation-phase failure
                return Errno.EINVAL;
            }
        }
        GuestMemory? memory = _host.GuestMemory;
        int withPayload = 0;
        ulong total = 0;
        for (int i = 0; i < controls.Length; i++)
        {
            if (controls[i].Size != 0)
            {
                withPayload++;
                total += controls[i].Size;
                if (controls[i].Size > MaxControlPayload || total > MaxControlPayloadTotal || memory is null || payloads.PlaneCount != controls.Length)
                {
                    header.ErrorIdx = (uint)i;
                    return Errno.ENOMEM;
                }
            }
        }
        // Pointer controls: the host reads/writes host buffers of exactly `size` bytes; the guest's pointer values
        // are kept here and restored afterwards.
        Span<long> guestPointers = withPayload == 0 ? default : new long[controls.Length];
        bool get = code == V4l2IoctlCode.GExtCtrls;
        int status = 0;
        try
        {
            for (int i = 0; i < controls.Length && withPayload > 0; i++)
            {
                guestPointers[i] = controls[i].Value64;
                if (controls[i].Size == 0)
                {
                    continue;
                }
                nint buffer = (nint)NativeMemory.AllocZeroed(controls[i].Size);
                controls[i].Value64 = buffer;
                if (!get && !GuestPages.CopyFrom(memory!, payloads.Plane(i), new Span<byte>((void*)buffer, (int)controls[i].Size)))
                {
                    header.ErrorIdx = (uint)i;
                    return Errno.EFAULT;
                }
            }
            // Safe: controls is the dispatcher's stack or pooled copy, fixed for the duration of the ioctl, and the
            // host reads exactly header.Count entries of it.
            fixed (V4l2ExtControl* array = controls)
            {
                ulong guestArray = header.Controls;
                header.Controls = (ulong)array;
                header.RequestFd = 0;
                status = Pass(code, ref header);
                header.Controls = guestArray;
            }
            // The host writes the values back on success for all three: G reads them, TRY and S return them as
            // adjusted (clamped, rounded), so the guest's pages get them each time.
            if (status == 0)
            {
                for (int i = 0; i < controls.Length && withPayload > 0; i++)
                {
                    uint size = controls[i].Size;
                    if (guestPointers[i] != 0 && size != 0 && !GuestPages.CopyTo(memory!, payloads.Plane(i),
                        new ReadOnlySpan<byte>((void*)controls[i].Value64, (int)Math.Min(size, GuestPages.Length(payloads.Plane(i))))))
                    {
                        header.ErrorIdx = (uint)i;
                        status = Errno.EFAULT;
                    }
                }
            }
            return status;
        }
        finally
        {
            for (int i = 0; i < controls.Length && withPayload > 0; i++)
            {
                if (payloads.PlaneCount == controls.Length && payloads.Plane(i).Length > 0 && controls[i].Value64 != guestPointers[i])
                {
                    NativeMemory.Free((void*)controls[i].Value64);
                    controls[i].Value64 = guestPointers[i];
                }
            }
        }
    }

    // ---- events ----

    public override int SubscribeEvent(in V4l2EventSubscription subscription)
    {
        if (subscription.Type == V4l2Const.EventCtrl && IsHidden(subscription.Id))
        {
            return Errno.EINVAL;
        }
        V4l2EventSubscription s = subscription;
        int status = _node.Ioctl(V4l2IoctlCode.SubscribeEvent, IoctlDirection.Write, ref s);
        if (status == 0)
        {
            // SEND_INITIAL events are queued by the subscription: hand them over before the answer, as the kernel
            // makes them visible to the subscriber at once.
            DrainEvents();
        }
        return status;
    }

    public override int UnsubscribeEvent(in V4l2EventSubscription subscription)
    {
        V4l2EventSubscription s = subscription;
        return _node.Ioctl(V4l2IoctlCode.UnsubscribeEvent, IoctlDirection.Write, ref s);
    }

    // ---- buffers ----

    private Queue QueueOf(uint type)
    {
        if (!_queues.TryGetValue(type, out Queue? q))
        {
            q = new Queue(type);
            _queues.Add(type, q);
        }
        return q;
    }

    private static uint StripCapabilities(uint caps) => caps & ~(V4l2Const.BufCapSupportsDmaBuf | BufCapSupportsRequests | BufCapSupportsRemoveBufs);

    public override int RequestBuffers(ref V4l2RequestBuffers request)
    {
        if (!IsPassableType(request.Type) || !IsPassableMemory(request.Memory))
        {
            return Errno.EINVAL;
        }
        // V4L2 lets a driver grant fewer buffers than asked: the host grants at most the device's limit.
        request.Count = Math.Min(request.Count, (uint)_host.Limits.MaxBuffersPerQueue);
        int status = Pass(V4l2IoctlCode.ReqBufs, ref request);
        if (status != 0)
        {
            return status;
        }
        request.Capabilities = StripCapabilities(request.Capabilities);
        Queue q = QueueOf(request.Type);
        // The host freed (or orphaned, while mapped) every previous buffer of the queue.
        ReleaseBuffers(q);
        q.Memory = request.Memory;
        Interlocked.Exchange(ref _queuedOnHost, 0); // REQBUFS frees or orphans every buffer of the queue
        if (request.Count == 0 && q.Streaming)
        {
            q.Streaming = false; // REQBUFS(0) stops streaming
            _host.DropPendingDqbufs(request.Type);
            UpdateWatch();
        }
        return Traced(V4l2IoctlCode.ReqBufs, AddBuffers(q, 0, request.Count));
    }

    public override int CreateBuffers(ref V4l2CreateBuffers create)
    {
        if (!IsPassableType(create.Format.Type) || !IsPassableMemory(create.Memory))
        {
            return Errno.EINVAL;
        }
        Queue q = QueueOf(create.Format.Type);
        if (create.Count > 0)
        {
            // The device's buffer limit, as vb2 answers a full queue: ENOBUFS, else as many as still fit.
            int room = _host.Limits.MaxBuffersPerQueue - q.Buffers.Count;
            if (room <= 0)
            {
                return Errno.ENOBUFS;
            }
            create.Count = Math.Min(create.Count, (uint)room);
        }
        int status = Pass(V4l2IoctlCode.CreateBufs, ref create);
        if (status != 0)
        {
            return status;
        }
        create.Capabilities = StripCapabilities(create.Capabilities);
        if (q.Buffers.Count == 0)
        {
            q.Memory = create.Memory;
        }
        return AddBuffers(q, create.Index, create.Count);
    }

    // Records the new buffers [first, first + count): their planes' mem_offset cookies for CMD_MMAP.
    private int AddBuffers(Queue q, uint first, uint count)
    {
        if (first + (ulong)count > 4096)
        {
            return Errno.EINVAL;
        }
        while (q.Buffers.Count < first + count)
        {
            q.Buffers.Add(new HostBuffer());
        }
        if (q.Memory != (uint)V4l2Memory.Mmap)
        {
            return 0;
        }
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        bool mplane = IsMultiPlanar(q.Type);
        for (uint i = first; i < first + count; i++)
        {
            var b = new V4l2Buffer { Index = i, Type = q.Type, Memory = q.Memory };
            int status = PassWithPlanes(V4l2IoctlCode.QueryBuf, ref b, planes, mplane);
            if (status != 0)
            {
                return status;
            }
            HostBuffer hb = q.Buffers[(int)i];
            hb.Planes = mplane ? (int)Math.Min(b.Length, V4l2Const.VideoMaxPlanes) : 1;
            for (int p = 0; p < hb.Planes; p++)
            {
                hb.MemOffset[p] = mplane ? (uint)planes[p].M : (uint)b.M;
                hb.Length[p] = mplane ? planes[p].Length : b.Length;
                _byMemOffset[hb.MemOffset[p]] = (q, (int)i, p);
            }
        }
        return 0;
    }

    // QUERYBUF/DQBUF of a buffer the host describes: room for every plane it may have.
    private int PassWithPlanes(V4l2IoctlCode code, ref V4l2Buffer b, Span<V4l2Plane> planes, bool mplane)
    {
        planes.Clear();
        // Safe: planes is the caller's stack array of VideoMaxPlanes entries, the count given to the host, and
        // stays fixed for the call.
        fixed (V4l2Plane* p = planes)
        {
            if (mplane)
            {
                b.M = (ulong)p;
                b.Length = V4l2Const.VideoMaxPlanes;
            }
            return Pass(code, ref b);
        }
    }

    private void ReleaseBuffers(Queue q)
    {
        foreach (HostBuffer hb in q.Buffers)
        {
            for (int p = 0; p < V4l2Const.VideoMaxPlanes; p++)
            {
                if (hb.Mapped[p] is { } mapped)
                {
                    hb.Mapped[p] = null;
                    mapped.Release(); // the guest's mappings keep theirs until MUNMAP
                }
                if (hb.Bounces[p] is { } bounce)
                {
                    hb.Bounces[p] = null;
                    bounce.Dispose();
                }
                if (p < hb.Planes && _byMemOffset.TryGetValue(hb.MemOffset[p], out var owner) && owner.Queue == q)
                {
                    _byMemOffset.Remove(hb.MemOffset[p]);
                }
            }
        }
        q.Buffers.Clear();
    }

    public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer)
    {
        buffer = null;
        if (!_byMemOffset.TryGetValue(memOffset, out var where))
        {
            return Errno.EINVAL;
        }
        SharedMemoryRegion? region = _host.SharedMemory;
        if (region is null)
        {
            return Errno.ENOTTY;
        }
        HostBuffer hb = where.Queue.Buffers[where.Index];
        if (hb.Mapped[where.Plane] is { IsFreed: false } existing)
        {
            buffer = existing;
            return 0;
        }
        uint length = hb.Length[where.Plane];
        // The host driver's pages themselves become region pages (a KVM slot at BAR + offset): the guest reads
        // what the host captured, with no copy.
        int status = region.Map(_node.Handle, memOffset, length, writable: true, out ulong offset);
        if (status != 0)
        {
            return status;
        }
        ulong rounded = PageRangeAllocator.RoundUp(length);
        buffer = new MmapBuffer(region, offset, length, rounded, b => region.Unmap(b.Offset));
        hb.Mapped[where.Plane] = buffer;
        return 0;
    }

    public override int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes) =>
        BufferIoctl(V4l2IoctlCode.QueryBuf, ref buffer, planes, default);

    public override int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) =>
        BufferIoctl(V4l2IoctlCode.PrepareBuf, ref buffer, planes, pages);

    public override int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        int status = BufferIoctl(V4l2IoctlCode.QBuf, ref buffer, planes, pages);
        if (status == 0)
        {
            Progress();
            if (Interlocked.Increment(ref _queuedOnHost) == 1)
            {
                _host.WakeFrameClock(); // the watchdog's deadline may now exist
            }
        }
        if (status == 0 && _buffersPaused)
        {
            _buffersPaused = false;
            UpdateWatch();
        }
        return status;
    }

    private int BufferIoctl(V4l2IoctlCode code, ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        // QUERYBUF ignores (and answers) the memory field; applications often leave it 0.
        if (!IsPassableType(buffer.Type) || (code != V4l2IoctlCode.QueryBuf && !IsPassableMemory(buffer.Memory)) ||
            (buffer.Flags & BufFlagRequestFd) != 0)
        {
            return Errno.EINVAL;
        }
        bool mplane = IsMultiPlanar(buffer.Type);
        bool userPtr = buffer.Memory == (uint)V4l2Memory.UserPtr && code != V4l2IoctlCode.QueryBuf;
        Span<V4l2Plane> hostPlanes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        planes.CopyTo(hostPlanes);
        if (userPtr)
        {
            int status = AttachUserPages(ref buffer, hostPlanes[..planes.Length], pages, mplane);
            if (status != 0)
            {
                return status;
            }
        }
        int result;
        // Safe: hostPlanes lives on this stack frame; the host reads and writes at most buffer.Length (≤ the
        // guest's plane count, checked by the dispatcher) entries of it.
        fixed (V4l2Plane* p = hostPlanes)
        {
            if (mplane)
            {
                buffer.M = (ulong)p;
            }
            result = Pass(code, ref buffer);
        }
        hostPlanes[..planes.Length].CopyTo(planes);
        HideHostPointers(ref buffer, planes, mplane);
        return result;
    }

    // Neither the address of our plane array nor a host userptr (guest RAM's host address, a bounce buffer) goes
    // back; the dispatcher restores the guest's own values where the protocol wants them.
    private static void HideHostPointers(ref V4l2Buffer buffer, Span<V4l2Plane> planes, bool mplane)
    {
        bool userPtr = buffer.Memory == (uint)V4l2Memory.UserPtr;
        if (mplane || userPtr)
        {
            buffer.M = 0;
        }
        if (userPtr)
        {
            for (int i = 0; i < planes.Length; i++)
            {
                planes[i].M = 0;
            }
        }
    }

    // SHARED_PAGES → host USERPTR: one run of guest RAM is passed in place; anything else through a bounce buffer.
    private int AttachUserPages(ref V4l2Buffer buffer, Span<V4l2Plane> hostPlanes, in SharedPagesLists pages, bool mplane)
    {
        GuestMemory? memory = _host.GuestMemory;
        if (memory is null)
        {
            return Errno.EFAULT;
        }
        _queues.TryGetValue(buffer.Type, out Queue? q);
        HostBuffer? hb = q is not null && buffer.Index < q.Buffers.Count ? q.Buffers[(int)buffer.Index] : null;
        int count = mplane ? hostPlanes.Length : 1;
        for (int p = 0; p < count && p < pages.PlaneCount; p++)
        {
            uint length = mplane ? hostPlanes[p].Length : buffer.Length;
            ReadOnlySpan<SgEntry> sg = pages.Plane(p);
            ulong address = 0;
            if (length != 0 && sg.Length > 0)
            {
                if (IsOneRun(sg) && memory.TryGetSpan(new GuestAddress(sg[0].Start), length, out Span<byte> run))
                {
                    // Safe: the span lies in guest RAM, which stays mapped for the VM's lifetime, longer than any host
                    // buffer pinning it.
                    fixed (byte* r = run)
                    {
                        address = (ulong)r;
                    }
                }
                else if (hb is not null)
                {
                    Bounce bounce = BounceFor(hb, p, length);
                    if (bounce.Entries.Length < sg.Length)
                    {
                        bounce.Entries = new SgEntry[sg.Length];
                    }
                    sg.CopyTo(bounce.Entries);
                    bounce.EntryCount = sg.Length;
                    if (IsOutput(buffer.Type))
                    {
                        if (!GuestPages.CopyFrom(memory, sg, new Span<byte>((void*)bounce.Address, (int)length)))
                        {
                            return Errno.EFAULT;
                        }
                        CountCopy(length);
                    }
                    address = (ulong)bounce.Address;
                }
                else
                {
                    address = 0; // an index the host does not know: it answers EINVAL itself
                }
            }
            if (mplane)
            {
                hostPlanes[p].M = address;
            }
            else
            {
                buffer.M = address;
            }
        }
        return 0;
    }

    // The proxy's only frame copy: the device-wide total (logged at the end) and the device's bytes_copied metric.
    private void CountCopy(long bytes)
    {
        _copied.AddCopy(bytes, "SHARED_PAGES not in one run of guest RAM");
        _host.CountCopiedBytes(bytes);
    }

    private static bool IsOneRun(ReadOnlySpan<SgEntry> sg)
    {
        for (int i = 1; i < sg.Length; i++)
        {
            if (sg[i].Start != sg[i - 1].Start + sg[i - 1].Length)
            {
                return false;
            }
        }
        return true;
    }

    private static Bounce BounceFor(HostBuffer hb, int plane, uint length)
    {
        if (hb.Bounces[plane] is { } b && b.Length >= length)
        {
            return b;
        }
        hb.Bounces[plane]?.Dispose();
        uint rounded = (uint)PageRangeAllocator.RoundUp(length);
        var bounce = new Bounce((nint)NativeMemory.AlignedAlloc(rounded, (nuint)PageRangeAllocator.PageSize), rounded);
        hb.Bounces[plane] = bounce;
        return bounce;
    }

    public override int StreamOn(uint bufferType) => SetStreaming(bufferType, on: true);

    public override int StreamOff(uint bufferType) => SetStreaming(bufferType, on: false);

    private int SetStreaming(uint bufferType, bool on)
    {
        if (!IsPassableType(bufferType))
        {
            return Errno.EINVAL;
        }
        uint type = bufferType;
        int status = _node.Ioctl(on ? V4l2IoctlCode.StreamOn : V4l2IoctlCode.StreamOff, IoctlDirection.Write, ref type);
        if (status == 0)
        {
            QueueOf(bufferType).Streaming = on;
            Progress();
            if (!on)
            {
                // vb2 returned every buffer to the dequeued state; finished buffers not yet delivered are void.
                _host.DropPendingDqbufs(bufferType);
                Interlocked.Exchange(ref _queuedOnHost, 0);
            }
            UpdateWatch();
        }
        return status;
    }

    // ---- host readiness, on the device thread ----

    private void UpdateWatch()
    {
        if (_failed || _disposed)
        {
            return;
        }
        uint mask = EpollPri;
        bool streaming = false;
        foreach (Queue q in _queues.Values)
        {
            streaming |= q.Streaming;
            if (q.Streaming && !_buffersPaused)
            {
                mask |= IsOutput(q.Type) ? EpollOut : EpollIn;
            }
        }
        _streaming = streaming;
        if (streaming)
        {
            _host.WakeFrameClock();
        }
        if (mask == _watchMask)
        {
            return;
        }
        _host.Unwatch(_watch);
        _watchMask = mask;
        _watch = _host.Watch(_node.Handle, mask, this);
    }

    public void OnEvent(uint events)
    {
        if (_failed || _disposed)
        {
            return;
        }
        if ((events & (EpollIn | EpollOut | EpollErr)) != 0 && !DrainBuffers())
        {
            return;
        }
        if ((events & EpollPri) != 0 && !DrainEvents())
        {
            return;
        }
        if ((events & EpollHup) != 0)
        {
            Fail(Errno.ENODEV, $"the host node hung up (poll events 0x{events:x})"); // unbound, unplugged
            return;
        }
        if ((events & EpollErr) != 0)
        {
            _buffersPaused = true;
            UpdateWatch();
        }
    }

    // Dequeues every finished buffer of every streaming queue, in the host's order. False when the session failed.
    private bool DrainBuffers()
    {
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        foreach (Queue q in _queues.Values)
        {
            if (!q.Streaming)
            {
                continue;
            }
            bool mplane = IsMultiPlanar(q.Type);
            while (true)
            {
                var b = new V4l2Buffer { Type = q.Type, Memory = q.Memory };
                int status = PassWithPlanes(V4l2IoctlCode.DqBuf, ref b, planes, mplane);
                if (status is Errno.EAGAIN or Errno.EPIPE)
                {
                    break; // nothing finished; or the last buffer of a drained decoder was already dequeued
                }
                if (status != 0)
                {
                    Fail(status, $"VIDIOC_DQBUF failed on the host: errno {status}");
                    return false;
                }
                int planeCount = mplane ? (int)Math.Min(b.Length, V4l2Const.VideoMaxPlanes) : 0;
                if (q.Memory == (uint)V4l2Memory.UserPtr && !IsOutput(q.Type) && b.Index < q.Buffers.Count)
                {
                    CopyBackBounces(q.Buffers[(int)b.Index], b, planes[..planeCount], mplane);
                }
                HideHostPointers(ref b, planes[..planeCount], mplane);
                _host.SendDqbuf(b, planes[..planeCount]);
                _copied.AddFrame();
                Progress();
                if (Interlocked.Decrement(ref _queuedOnHost) < 0)
                {
                    Interlocked.Exchange(ref _queuedOnHost, 0);
                }
            }
        }
        return true;
    }

    private void CopyBackBounces(HostBuffer hb, in V4l2Buffer b, ReadOnlySpan<V4l2Plane> planes, bool mplane)
    {
        GuestMemory? memory = _host.GuestMemory;
        int count = mplane ? planes.Length : 1;
        for (int p = 0; p < count; p++)
        {
            // Only a plane that went through a bounce buffer this time: its host userptr is the bounce address.
            ulong hostAddress = mplane ? planes[p].M : b.M;
            if (memory is null || hb.Bounces[p] is not { } bounce || hostAddress != (ulong)bounce.Address)
            {
                continue;
            }
            uint used = Math.Min(mplane ? planes[p].BytesUsed : b.BytesUsed, bounce.Length);
            if (GuestPages.CopyTo(memory, bounce.Entries.AsSpan(0, bounce.EntryCount), new ReadOnlySpan<byte>((void*)bounce.Address, (int)used)))
            {
                CountCopy(used);
            }
        }
    }

    // Hands every pending host event to the guest. False when the session failed.
    private bool DrainEvents()
    {
        while (true)
        {
            var ev = default(V4l2Event);
            int status = _node.Ioctl(V4l2IoctlCode.DqEvent, IoctlDirection.Read, ref ev);
            if (status == Errno.ENOENT)
            {
                return true; // no event pending
            }
            if (status != 0)
            {
                if (status == Errno.ENODEV)
                {
                    Fail(Errno.ENODEV, "VIDIOC_DQEVENT: the host node is gone");
                    return false;
                }
                return true;
            }
            _host.SendEvent(ev);
        }
    }

    private void Progress() => Volatile.Write(ref _lastProgress, System.Diagnostics.Stopwatch.GetTimestamp());

    // The stall watchdog rides on the device's frame clock: a deadline only while the host holds queued buffers of a
    // streaming queue and has shown no progress.
    public override long NextFrameDeadline =>
        _stallTicks <= 0 || _failed || _disposed || !_streaming || Volatile.Read(ref _queuedOnHost) <= 0
            ? long.MaxValue
            : Volatile.Read(ref _lastProgress) + _stallTicks;

    public override void ProduceFrames(long now)
    {
        if (NextFrameDeadline <= now)
        {
            // A stalled host device: the session fails with ETIMEDOUT (the guest sees an ERROR event); its host
            // readiness watch goes with the next event or with CLOSE. Nothing here touches the device thread's state.
            _failed = true;
            MediaLog.HostSessionFailed(_logger, _node.Path, _host.SessionId, Errno.ETIMEDOUT,
                $"no progress for {(double)_stallTicks / System.Diagnostics.Stopwatch.Frequency:F1} s with buffers queued");
            _host.SendError(Errno.ETIMEDOUT);
        }
    }

    private void Fail(int errno, string reason)
    {
        MediaLog.HostSessionFailed(_logger, _node.Path, _host.SessionId, errno, reason);
        _failed = true;
        _host.Unwatch(_watch);
        _host.SendError(errno);
    }

    public override void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _host.Unwatch(_watch);
        foreach (Queue q in _queues.Values)
        {
            foreach (HostBuffer hb in q.Buffers)
            {
                for (int p = 0; p < V4l2Const.VideoMaxPlanes; p++)
                {
                    if (hb.Mapped[p] is { } mapped)
                    {
                        hb.Mapped[p] = null;
                        mapped.Release();
                    }
                }
            }
        }
        // Closing the host file frees its vb2 queue (mapped buffers live on in their mappings) and unpins USERPTR
        // pages, so bounce buffers can go after it.
        _node.Dispose();
        foreach (Queue q in _queues.Values)
        {
            foreach (HostBuffer hb in q.Buffers)
            {
                foreach (Bounce? bounce in hb.Bounces)
                {
                    bounce?.Dispose();
                }
            }
        }
        _queues.Clear();
        _byMemOffset.Clear();
    }
}
