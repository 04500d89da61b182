using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.Sessions;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// Executes virtio-media commands, independent of any transport: the readable part of a commandq chain in, the
/// writable part out, the used length as the result. Never throws for guest input: malformed commands get an errno
/// (or, when even the 8-byte response header does not fit, used length 0). A backend exception becomes EIO.
/// Called from one thread at a time (the command worker); sessions and mappings are thread-safe for the frame clock.
/// </summary>
public sealed class CommandProcessor
{
    private readonly IMediaBackend _backend;
    private readonly ILogger _logger;
    private readonly Func<GuestMemory?> _memory;
    private readonly Action<long> _wakeClock;
    private readonly EventLoop? _loop;
    private int _backendFaultLogged;

    /// <param name="backend">The video source.</param>
    /// <param name="region">Shared-memory region 0, or null when the device has none (MMAP then fails with ENOTTY).</param>
    /// <param name="shm">Allocator over a memfd-backed <paramref name="region"/>; null for a host-mapped one.</param>
    /// <param name="memory">Guest RAM once the device is activated.</param>
    /// <param name="wakeClock">Tells the frame clock a session's new deadline (a Stopwatch timestamp).</param>
    /// <param name="loop">The device's event loop, run by the command thread, on which sessions watch host
    /// descriptors; null where no backend needs one (unit tests).</param>
    /// <param name="limits">What a guest may hold; <see cref="MediaDeviceLimits.Default"/> when null.</param>
    /// <param name="metrics">The device's metric tags; a new name (<see cref="MediaDeviceMetrics.NextDeviceName"/>)
    /// when null.</param>
    /// <param name="logger">Where a backend's exception is logged (none when null).</param>
    public CommandProcessor(IMediaBackend backend, SharedMemoryRegion? region, ShmAllocator? shm, Func<GuestMemory?> memory,
        Action<long> wakeClock, EventLoop? loop = null, MediaDeviceLimits? limits = null, MediaDeviceMetrics? metrics = null,
        ILogger? logger = null)
    {
        _backend = backend;
        _logger = logger ?? NullLogger.Instance;
        Limits = limits ?? MediaDeviceLimits.Default;
        Sessions = new SessionTable { MaxSessions = Limits.MaxSessions };
        Events = new PendingEvents(Limits.MaxPendingEvents, PendingEvents.DefaultMaxBytes);
        Region = region;
        Shm = shm;
        _memory = memory;
        _wakeClock = wakeClock;
        _loop = loop;
        Metrics = metrics ?? new MediaDeviceMetrics(MediaDeviceMetrics.NextDeviceName());
    }

    public MediaDeviceLimits Limits { get; }
    public SessionTable Sessions { get; }
    public MappingTable Mappings { get; } = new();
    public PendingEvents Events { get; }
    public SharedMemoryRegion? Region { get; }
    public ShmAllocator? Shm { get; }

    /// <summary>Sees every frame a backend completes in an MMAP buffer; null for none. Sessions opened after it is
    /// set report to it (set it before the guest runs).</summary>
    public IFrameObserver? FrameObserver { get; set; }

    /// <summary>What this device records on the VMM's meter, and its <c>device</c> tag.</summary>
    public MediaDeviceMetrics Metrics { get; }

    /// <summary>Processes one command; returns the number of bytes written to <paramref name="response"/>.</summary>
    public int Process(ReadOnlySpan<byte> request, Span<byte> response)
    {
        if (!MemoryMarshal.TryRead(request, out CmdHeader header))
        {
            return Status(response, Errno.EINVAL);
        }
        return (VirtioMediaCommand)header.Cmd switch
        {
            VirtioMediaCommand.Open => Open(response),
            VirtioMediaCommand.Close => Close(request),
            VirtioMediaCommand.Ioctl => Ioctl(request, response),
            VirtioMediaCommand.Mmap => Mmap(request, response),
            VirtioMediaCommand.Munmap => Munmap(request, response),
            _ => Status(response, Errno.ENOTTY),
        };
    }

    /// <summary>The answer to a command longer than <see cref="MediaDeviceLimits.MaxCommandBytes"/>: E2BIG, unread.</summary>
    public static int RefuseOversized(Span<byte> response) => Status(response, Errno.E2BIG);

    private static int Status(Span<byte> response, int errno)
    {
        if (response.Length < VirtioMediaWire.RespHeaderSize)
        {
            return 0;
        }
        MemoryMarshal.Write(response, new RespHeader { Status = (uint)errno });
        return VirtioMediaWire.RespHeaderSize;
    }

    private int Open(Span<byte> response)
    {
        if (response.Length < VirtioMediaWire.RespOpenSize)
        {
            return Status(response, Errno.EINVAL);
        }
        if (!Sessions.TryReserveId(out uint id))
        {
            return Status(response, Errno.EMFILE); // max-sessions open (or, after 4 billion OPENs, ids ran out)
        }
        var session = new MediaSession(id, Events, Shm, _memory, _wakeClock, Region, _loop, Limits, FrameObserver, Metrics);
        int status;
        MediaBackendSession? backendSession;
        try
        {
            status = _backend.Open(session, out backendSession);
        }
        catch (Exception)
        {
            status = Errno.EIO;
            backendSession = null;
        }
        if (status != 0 || backendSession is null)
        {
            return Status(response, status != 0 ? status : Errno.EIO);
        }
        session.Backend = backendSession;
        Sessions.Add(session);
        _wakeClock(backendSession.NextFrameDeadline); // the new session may already have a deadline
        MemoryMarshal.Write(response, new RespOpen { SessionId = id });
        return VirtioMediaWire.RespOpenSize;
    }

    private int Close(ReadOnlySpan<byte> request)
    {
        // CLOSE has no writable part; an unknown or malformed session is silently ignored (reference behaviour).
        if (!MemoryMarshal.TryRead(request, out CmdClose close))
        {
            return 0;
        }
        MediaSession? session = Sessions.Remove(close.SessionId);
        if (session is null)
        {
            return 0;
        }
        lock (session.CommandLock)
        {
            try
            {
                session.Backend.Dispose();
            }
            catch (Exception)
            {
                // The session is gone either way; its mappings stay valid until MUNMAP.
            }
        }
        Events.Drop(close.SessionId, null);
        return 0;
    }

    private int Ioctl(ReadOnlySpan<byte> request, Span<byte> response)
    {
        if (!MemoryMarshal.TryRead(request, out CmdIoctl cmd))
        {
            return Status(response, Errno.EINVAL);
        }
        if (response.Length < VirtioMediaWire.RespHeaderSize)
        {
            return 0;
        }
        MediaSession? session = Sessions.Find(cmd.SessionId);
        if (session is null)
        {
            return Status(response, Errno.EINVAL);
        }
        if (session.Failed)
        {
            return Status(response, Errno.EIO);
        }
        int status, written;
        lock (session.CommandLock)
        {
            try
            {
                status = IoctlDispatcher.Dispatch(session.Backend, cmd.Code, request[VirtioMediaWire.CmdIoctlSize..],
                    response[VirtioMediaWire.RespHeaderSize..], out written);
            }
            catch (Exception e)
            {
                // A backend bug, not guest input: the guest gets EIO, the log gets the first cause.
                if (Interlocked.Exchange(ref _backendFaultLogged, 1) == 0)
                {
                    MediaLog.BackendIoctlFailed(_logger, cmd.Code, cmd.SessionId, e.GetType().Name, e.Message);
                }
                status = Errno.EIO;
                written = 0;
            }
        }
        MemoryMarshal.Write(response, new RespHeader { Status = (uint)status });
        return VirtioMediaWire.RespHeaderSize + written;
    }

    private int Mmap(ReadOnlySpan<byte> request, Span<byte> response)
    {
        if (!MemoryMarshal.TryRead(request, out CmdMmap cmd) || response.Length < VirtioMediaWire.RespMmapSize)
        {
            return Status(response, Errno.EINVAL);
        }
        MediaSession? session = Sessions.Find(cmd.SessionId);
        if (session is null)
        {
            return Status(response, Errno.EINVAL);
        }
        if (session.Failed)
        {
            return Status(response, Errno.EIO);
        }
        if (Region is null)
        {
            return Status(response, Errno.ENOTTY);
        }
        if ((cmd.Flags & ~VirtioMediaWire.MmapFlagRw) != 0)
        {
            return Status(response, Errno.EINVAL);
        }
        int status;
        MmapBuffer? buffer;
        lock (session.CommandLock)
        {
            try
            {
                status = session.Backend.FindMmapBuffer(cmd.Offset, out buffer);
            }
            catch (Exception)
            {
                status = Errno.EIO;
                buffer = null;
            }
            if (status == 0 && buffer is not null)
            {
                status = Mappings.Map(buffer, (cmd.Flags & VirtioMediaWire.MmapFlagRw) != 0);
            }
        }
        if (status != 0 || buffer is null)
        {
            return Status(response, status != 0 ? status : Errno.EINVAL);
        }
        MemoryMarshal.Write(response, new RespMmap { DriverAddr = buffer.Offset, Length = buffer.Length });
        return VirtioMediaWire.RespMmapSize;
    }

    private int Munmap(ReadOnlySpan<byte> request, Span<byte> response)
    {
        if (!MemoryMarshal.TryRead(request, out CmdMunmap cmd))
        {
            return Status(response, Errno.EINVAL);
        }
        return Status(response, Mappings.Unmap(cmd.DriverAddr));
    }

    /// <summary>Closes every session and drops every mapping (device reset / dispose).</summary>
    public void CloseAll()
    {
        foreach (MediaSession s in Sessions.RemoveAll())
        {
            try
            {
                s.Backend.Dispose();
            }
            catch (Exception)
            {
                // Reset must complete whatever a backend does.
            }
        }
        Mappings.Clear();
        Events.Clear();
    }
}
