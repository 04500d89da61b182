using Vmm.Core.Events;
using Vmm.Core.Interop;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends;

/// <summary>
/// What produces or consumes the video behind a virtio-media device: the built-in test-pattern camera, and later a
/// host /dev/videoN proxy. The device owns the virtio side (queues, sessions, events, shared memory, pacing clock);
/// a backend answers V4L2 ioctls per session and fills buffers.
/// </summary>
public interface IMediaBackend : IDisposable
{
    /// <summary>V4L2 device_caps for the config space (without V4L2_CAP_DEVICE_CAPS).</summary>
    uint DeviceCaps { get; }

    /// <summary>Card name for the config space (≤ 31 bytes used).</summary>
    string Card { get; }

    /// <summary>True when MMAP buffers are the host driver's own pages mapped into region 0 through
    /// <see cref="IMediaSessionHost.SharedMemory"/> (a proxy); false when the device carves them out of its own
    /// memfd (<see cref="IMediaSessionHost.Shm"/>).</summary>
    bool MapsHostBuffers => false;

    /// <summary>Opens a session (guest open()). Returns 0 and the session, or a positive errno.</summary>
    int Open(IMediaSessionHost host, out MediaBackendSession? session);
}

/// <summary>The device services a backend session may use; implemented by the device for each session.
/// Every method is callable from any thread and never blocks on the guest.</summary>
public interface IMediaSessionHost
{
    /// <summary>What a guest may hold of the device; a backend session applies the per-queue buffer limit.</summary>
    MediaDeviceLimits Limits { get; }

    uint SessionId { get; }

    /// <summary>Allocator for MMAP buffers in a memfd-backed region 0, or null (no region, or a host-mapped one).</summary>
    ShmAllocator? Shm { get; }

    /// <summary>Region 0, or null when the device has none. For a backend with
    /// <see cref="IMediaBackend.MapsHostBuffers"/> it is the host-memory mapper that installs host buffers.</summary>
    SharedMemoryRegion? SharedMemory { get; }

    /// <summary>Watches a host descriptor on the device's event loop (the thread that executes commands and
    /// delivers events): <paramref name="handler"/> runs there, in order with command handling, so no lock
    /// against the session's ioctls is needed. Level-triggered: the handler must consume the readiness.</summary>
    EventLoop.Registration Watch(FileDescriptorHandle fd, uint events, IEventHandler handler);

    /// <summary>Stops a <see cref="Watch"/>; idempotent.</summary>
    void Unwatch(EventLoop.Registration registration);

    /// <summary>Guest RAM, for SHARED_PAGES buffers (null until the device is activated).</summary>
    GuestMemory? GuestMemory { get; }

    /// <summary>Queues a DQBUF event (buffer done). Never dropped; delivered as eventq buffers become available.</summary>
    void SendDqbuf(in V4l2Buffer buffer, ReadOnlySpan<V4l2Plane> planes);

    /// <summary>Queues a V4L2 event (EVT_EVENT).</summary>
    void SendEvent(in V4l2Event v4l2Event);

    /// <summary>Reports an unrecoverable session failure (EVT_ERROR); the device then fails the session's commands.</summary>
    void SendError(int errno);

    /// <summary>Drops this session's DQBUF events of buffers of <paramref name="bufferType"/> not yet handed to the
    /// driver (after STREAMOFF/REQBUFS(0) of that queue; a memory-to-memory session's other queue keeps its own).</summary>
    void DropPendingDqbufs(uint bufferType);

    /// <summary>Counts frame bytes the backend copied on their way to or from the guest (a fallback; a zero-copy path
    /// never calls this), in the device's <c>vmm.media.bytes_copied</c>.</summary>
    void CountCopiedBytes(long bytes);

    /// <summary>Tells the frame clock that <see cref="MediaBackendSession.NextFrameDeadline"/> moved earlier.</summary>
    void WakeFrameClock();

    /// <summary>Who wants to see completed frames (<see cref="Frames.IFrameObserver.FrameCompleted"/>), or null:
    /// a backend that writes frames into MMAP buffers reports each one there when set.</summary>
    Frames.IFrameObserver? FrameObserver { get; }
}

/// <summary>One open session of a backend: the ioctl handler plus buffer mapping and frame production.</summary>
public abstract class MediaBackendSession : IoctlHandler, IDisposable
{
    /// <summary>Resolves a CMD_MMAP <c>mem_offset</c> to the session's MMAP plane; 0 or a positive errno.</summary>
    public abstract int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer);

    /// <summary>When the next frame is due (<see cref="System.Diagnostics.Stopwatch"/> ticks), or long.MaxValue when idle.</summary>
    public virtual long NextFrameDeadline => long.MaxValue;

    /// <summary>Produces the frames due at <paramref name="now"/>. Called on the device's frame-clock thread; must not
    /// hold locks that ioctl handling needs while writing pixels.</summary>
    public virtual void ProduceFrames(long now)
    {
    }

    /// <summary>Releases everything the session owns (guest close()); mappings stay valid until MUNMAP.</summary>
    public abstract void Dispose();
}
