using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Interop;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Sessions;

/// <summary>
/// The device's side of one guest open(): the session id, the backend session, and the services the backend uses
/// (<see cref="IMediaSessionHost"/>). After an ERROR event the session is <see cref="Failed"/>: its commands fail
/// with EIO until the driver CLOSEs it, and the id is not reused.
/// </summary>
public sealed class MediaSession : IMediaSessionHost
{
    private readonly PendingEvents _events;
    private readonly Action<long> _wakeClock;
    private volatile bool _failed;

    private readonly EventLoop? _loop;
    private readonly MediaDeviceMetrics? _metrics;

    internal MediaSession(uint id, PendingEvents events, ShmAllocator? shm, Func<GuestMemory?> memory, Action<long> wakeClock,
        SharedMemoryRegion? region = null, EventLoop? loop = null, MediaDeviceLimits? limits = null,
        IFrameObserver? frameObserver = null, MediaDeviceMetrics? metrics = null)
    {
        SessionId = id;
        Limits = limits ?? MediaDeviceLimits.Default;
        _events = events;
        Shm = shm;
        SharedMemory = region ?? shm?.Region;
        _memory = memory;
        _wakeClock = wakeClock;
        _loop = loop;
        FrameObserver = frameObserver;
        _metrics = metrics;
    }

    public IFrameObserver? FrameObserver { get; }

    public MediaDeviceLimits Limits { get; }

    private readonly Func<GuestMemory?> _memory;

    public uint SessionId { get; }

    public ShmAllocator? Shm { get; }

    public SharedMemoryRegion? SharedMemory { get; }

    public EventLoop.Registration Watch(FileDescriptorHandle fd, uint events, IEventHandler handler)
    {
        if (_loop is null)
        {
            throw new InvalidOperationException("this device has no event loop to watch descriptors on");
        }
        var guarded = new GuardedHandler(this, handler);
        guarded.Registration = _loop.Add(fd, events, guarded);
        return guarded.Registration;
    }

    public void Unwatch(EventLoop.Registration registration) => _loop?.Remove(registration);

    // A backend's handler runs on the command thread; an exception from it must cost only its own session (ERROR
    // event), not the device's worker. A failed session stops watching: level-triggered readiness nobody consumes
    // would otherwise spin the loop.
    private sealed class GuardedHandler(MediaSession session, IEventHandler inner) : IEventHandler
    {
        public EventLoop.Registration Registration { get; set; }

        public void OnEvent(uint events)
        {
            if (session._failed)
            {
                session._loop?.Remove(Registration);
                return;
            }
            try
            {
                lock (session.CommandLock)
                {
                    inner.OnEvent(events);
                }
            }
            catch (Exception)
            {
                session.SendError(Errno.EIO);
            }
        }
    }

    public GuestMemory? GuestMemory => _memory();

    /// <summary>The backend's session; set right after the backend accepted the open.</summary>
    public MediaBackendSession Backend { get; internal set; } = null!;

    /// <summary>True after an ERROR event was sent for this session.</summary>
    public bool Failed => _failed;

    /// <summary>Serialises ioctls against CLOSE; the command thread is the only caller today, but the frame clock
    /// uses the backend concurrently and the backend does its own locking.</summary>
    internal object CommandLock { get; } = new();

    public void SendDqbuf(in V4l2Buffer buffer, ReadOnlySpan<V4l2Plane> planes)
    {
        if (_failed)
        {
            return;
        }
        Span<byte> bytes = stackalloc byte[VirtioMediaWire.EventDqbufSize];
        bytes.Clear();
        var ev = new EventDqbuf
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Dqbuf, SessionId = SessionId },
            Buffer = buffer,
        };
        int n = Math.Min(planes.Length, V4l2Const.VideoMaxPlanes);
        for (int i = 0; i < n; i++)
        {
            ev.Planes[i] = planes[i];
        }
        MemoryMarshal.Write(bytes, in ev);
        // The driver requires the full 608 bytes even for single-planar buffers.
        if (!_events.Enqueue(SessionId, VirtioMediaEventType.Dqbuf, bytes))
        {
            // The pending-event cap is full of undeliverable DQBUFs (the driver posts no eventq buffers): a
            // silently lost DQBUF would leave the application waiting forever, so fail the session instead.
            SendError(Errno.EIO);
            return;
        }
        _metrics?.FrameCompleted(BytesUsed(buffer, planes));
    }

    // A multi-planar buffer's bytesused is per plane; a single-planar one (no planes) has its own.
    private static long BytesUsed(in V4l2Buffer buffer, ReadOnlySpan<V4l2Plane> planes)
    {
        if (planes.IsEmpty)
        {
            return buffer.BytesUsed;
        }
        long sum = 0;
        foreach (ref readonly V4l2Plane p in planes)
        {
            sum += p.BytesUsed;
        }
        return sum;
    }

    public void CountCopiedBytes(long bytes) => _metrics?.FrameBytesCopied(bytes);

    public void SendEvent(in V4l2Event v4l2Event)
    {
        if (_failed)
        {
            return;
        }
        var ev = new EventEvent
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Event, SessionId = SessionId },
            Event = v4l2Event,
        };
        Span<byte> bytes = stackalloc byte[VirtioMediaWire.EventEventSize];
        MemoryMarshal.Write(bytes, in ev);
        _events.Enqueue(SessionId, VirtioMediaEventType.Event, bytes);
    }

    public void SendError(int errno)
    {
        if (_failed)
        {
            return;
        }
        _failed = true;
        _events.Drop(SessionId, null);
        var ev = new EventError
        {
            Header = new EventHeader { Event = (uint)VirtioMediaEventType.Error, SessionId = SessionId },
            Errno = (uint)errno,
        };
        Span<byte> bytes = stackalloc byte[VirtioMediaWire.EventErrorSize];
        MemoryMarshal.Write(bytes, in ev);
        _events.Enqueue(SessionId, VirtioMediaEventType.Error, bytes);
    }

    public void DropPendingDqbufs(uint bufferType) => _events.Drop(SessionId, VirtioMediaEventType.Dqbuf, bufferType);

    /// <summary>Passes the backend's new deadline, so the clock is woken only when it sleeps past it.</summary>
    public void WakeFrameClock() => _wakeClock(Backend.NextFrameDeadline);
}
