using System.Diagnostics;
using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;

using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.Testing.Virtio;

namespace Vmm.Testing.VirtioMedia;

/// <summary>
/// An embedded virtio-media "guest": it owns a device and plays the Linux driver's part — sending commands with the
/// exact wire layouts, collecting events, mapping MMAP buffers through shared-memory region 0 — so tests, benchmarks
/// and applications can drive the camera without KVM. Frame bytes are read from the same shared-memory pages a guest
/// would map. Thread-safe for one caller per session.
/// </summary>
/// <example>
/// <code>
/// using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 1280, Height = 720, Fps = 60 });
/// using var s = bed.OpenSession();
/// s.SetFormat(FourCc.Nv12, 1280, 720);
/// s.RequestBuffers(4, V4l2Memory.Mmap);
/// s.QueueAllBuffers();
/// s.StreamOn();
/// for (int i = 0; i &lt; 100; i++)
/// {
///     using TestbedFrame frame = s.DequeueFrame(TimeSpan.FromSeconds(1));
///     uint crc = frame.Checksum();           // CRC-32C of the image bytes, as the guest sees them
///     // frame.Plane(0) is the mapped buffer itself; disposing the frame queues the buffer again.
/// }
/// s.StreamOff();
/// </code>
/// </example>
public sealed class VirtioMediaTestbed : IDisposable
{
    /// <summary>The driver's command timeout; a command not answered within it is a device failure.</summary>
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Bytes at the top of guest RAM used by the simulated driver for rings and buffers.</summary>
    public const ulong ReservedTop = 4UL << 20;

    private const ushort CommandQueueSize = 256;
    private const ushort EventQueueSize = 64;
    private const int EventBuffers = 16; // VIRTIO_MEDIA_NUM_EVENT_BUFS in the Linux driver

    private readonly object _commandLock = new();
    private readonly object _eventLock = new();
    private readonly Dictionary<uint, Queue<byte[]>> _eventsBySession = [];
    private readonly AutoResetEvent _eventArrived = new(false);
    private readonly byte[] _response = new byte[64 * 1024];
    private readonly EventFd[] _queueEvents = [new EventFd(), new EventFd()];
    private readonly VirtQueue[] _deviceQueues;
    private readonly VirtQueueDriver _commandDriver;
    private readonly VirtQueueDriver _eventDriver;
    private readonly GuestAddress[] _eventBufferOfHead = new GuestAddress[EventQueueSize];
    private readonly bool[] _foreignEventHead = new bool[EventQueueSize];
    private readonly List<DriverCompletion> _foreignEventCompletions = [];
    private readonly TestbedNotifier _notifier = new();
    private readonly bool _stepped;
    private bool _disposed;

    private VirtioMediaTestbed(VirtioMediaDevice device, GuestMemory memory, bool stepped)
    {
        Device = device;
        GuestMemory = memory;
        _stepped = stepped;
        ulong top = memory.Regions[^1].End;
        if (memory.Regions[^1].Size < 2 * ReservedTop)
        {
            throw new ArgumentException("the testbed needs at least 8 MiB of guest RAM");
        }
        // Play the transport and the driver: lay out both rings in guest RAM, program the device's queues as the
        // common configuration would, activate them (validation happens there), then DRIVER_OK → Activate.
        var baseAddress = new GuestAddress(top - ReservedTop);
        const ulong acked = VirtioFeatures.Version1 | VirtioFeatures.EventIdx;
        _commandDriver = new VirtQueueDriver(memory, baseAddress, CommandQueueSize, baseAddress.Add(0x10000), 2UL << 20,
            eventIdx: true, kick: _queueEvents[0]);
        _eventDriver = new VirtQueueDriver(memory, baseAddress.Add(0x8000), EventQueueSize, baseAddress.Add(0x210000), 64UL << 10,
            eventIdx: true, kick: _queueEvents[1]);
        _deviceQueues = [new VirtQueue(device.QueueMaxSizes[0]), new VirtQueue(device.QueueMaxSizes[1])];
        _commandDriver.ConfigureDevice(_deviceQueues[0]);
        _eventDriver.ConfigureDevice(_deviceQueues[1]);
        foreach (VirtQueue q in _deviceQueues)
        {
            VirtQueueError error = q.Activate(memory, acked);
            if (error != VirtQueueError.None)
            {
                throw new InvalidOperationException($"queue activation failed: {error}");
            }
        }
        // Like the Linux driver: post 16 event buffers of 608 bytes before DRIVER_OK.
        for (int i = 0; i < EventBuffers; i++)
        {
            PostEventBuffer(_eventDriver.AllocateBuffer(VirtioMediaWire.EventMaxSize));
        }
        _eventDriver.Kick();
        _notifier.Used[1] = _eventArrived;
        var activation = new VirtioActivation(memory, _deviceQueues, _queueEvents, _notifier, acked);
        if (stepped)
        {
            device.ActivateStepped(activation);
            device.ProcessQueues();
        }
        else
        {
            device.Activate(activation);
        }
    }

    private void PostEventBuffer(GuestAddress address)
    {
        Span<DriverBuffer> one = [new DriverBuffer(address, VirtioMediaWire.EventMaxSize, DeviceWritable: true)];
        ushort head = _eventDriver.AddChain(one);
        _eventBufferOfHead[head] = address;
    }

    /// <summary>Creates a testbed around the backend <paramref name="options"/> describe (default: the
    /// <see cref="MediaBackendSpecs.Default"/> backend, a 640×480 YUYV camera at 30 fps) and
    /// <paramref name="guestRamSize"/> bytes of simulated guest RAM at guest-physical 0 (the top
    /// <see cref="ReservedTop"/> bytes hold the simulated driver's rings and buffers).</summary>
    public static VirtioMediaTestbed Create(IMediaBackendOptions? options = null, ulong guestRamSize = 64UL << 20)
        => Create(options, guestRamSize, stepped: false);

    /// <summary>Like <see cref="Create(IMediaBackendOptions?, ulong)"/>, but the device runs no threads: each
    /// command is executed on the caller's thread inside <see cref="SendCommand"/>, and frames that are due are
    /// produced only inside <see cref="PumpEvents"/> (which the session helpers' waits call). Deterministic, for
    /// fuzzing and for tests that must not race the frame clock. One caller at a time.</summary>
    public static VirtioMediaTestbed CreateStepped(IMediaBackendOptions? options = null, ulong guestRamSize = 64UL << 20)
        => Create(options, guestRamSize, stepped: true);

    private static VirtioMediaTestbed Create(IMediaBackendOptions? options, ulong guestRamSize, bool stepped)
    {
        if (options is null && !MediaBackendSpecs.TryParse(MediaBackendSpecs.Default, out options, out string? error))
        {
            throw new InvalidOperationException(error);
        }
        return Create(VirtioMediaDevice.Create(options), guestRamSize, stepped);
    }

    /// <summary>Creates a testbed around an existing device (e.g. another backend); the testbed disposes it.</summary>
    public static VirtioMediaTestbed Create(VirtioMediaDevice device, ulong guestRamSize = 64UL << 20)
        => Create(device, guestRamSize, stepped: false);

    private static VirtioMediaTestbed Create(VirtioMediaDevice device, ulong guestRamSize, bool stepped)
    {
        GuestMemory? memory = null;
        try
        {
            memory = GuestMemory.CreateAnonymous((new GuestAddress(0), guestRamSize));
            return new VirtioMediaTestbed(device, memory, stepped);
        }
        catch
        {
            device.Dispose();
            memory?.Dispose();
            throw;
        }
    }

    public VirtioMediaDevice Device { get; }

    /// <summary>The simulated guest RAM (for SHARED_PAGES buffers; avoid the top <see cref="ReservedTop"/> bytes).</summary>
    public GuestMemory GuestMemory { get; }

    /// <summary>Set when the device reported DEVICE_NEEDS_RESET (a broken ring).</summary>
    public string? NeedsResetReason => _notifier.NeedsResetReason;

    /// <summary>Reads the 40-byte configuration space.</summary>
    public VirtioMediaConfig ReadConfig()
    {
        Span<byte> bytes = stackalloc byte[VirtioMediaWire.ConfigSize];
        Device.ReadConfig(0, bytes);
        return MemoryMarshal.Read<VirtioMediaConfig>(bytes);
    }

    /// <summary>Sends a raw command through the command queue: <paramref name="request"/> becomes the
    /// device-readable buffer, <paramref name="response"/>'s length the device-writable buffer. Returns the used
    /// length, as the driver would see it. Throws <see cref="TimeoutException"/> if the device does not answer
    /// within the driver's 5-second timeout (a stepped device: if it did not answer at once).</summary>
    public int SendCommand(ReadOnlySpan<byte> request, Span<byte> response)
    {
        lock (_commandLock)
        {
            _commandDriver.Submit(request, (uint)response.Length);
            _commandDriver.Kick();
            DriverCompletion completion = _stepped ? TakeSteppedAnswer() : WaitForAnswer();
            Span<byte> written = _commandDriver.GetResponse(completion);
            written.CopyTo(response);
            _commandDriver.Release(completion);
            return (int)completion.WrittenLength;
        }
    }

    private DriverCompletion TakeSteppedAnswer()
    {
        // The device answers inside ProcessQueues or never (a broken ring): there is nothing to wait for.
        Device.ProcessQueues();
        if (!_commandDriver.TryTakeUsed(out DriverCompletion completion))
        {
            throw new TimeoutException($"virtio-media command not answered: {NeedsResetReason ?? "no used buffer"}");
        }
        return completion;
    }

    private DriverCompletion WaitForAnswer()
    {
        long deadline = Environment.TickCount64 + (long)CommandTimeout.TotalMilliseconds;
        DriverCompletion completion;
        while (!_commandDriver.TryTakeUsed(out completion))
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                throw new TimeoutException("virtio-media command not answered within 5 s");
            }
            _notifier.Used[0].WaitOne((int)Math.Min(left, 20));
        }
        return completion;
    }

    /// <summary>Opens a session (guest open()).</summary>
    public TestbedSession OpenSession()
    {
        Span<byte> req = stackalloc byte[VirtioMediaWire.CmdOpenSize];
        MemoryMarshal.Write(req, new CmdHeader { Cmd = (uint)VirtioMediaCommand.Open });
        Span<byte> resp = stackalloc byte[VirtioMediaWire.RespOpenSize];
        int used = SendCommand(req, resp);
        RespOpen open = MemoryMarshal.Read<RespOpen>(resp);
        if (used < 8)
        {
            throw new VirtioMediaException(Errno.EINVAL, "OPEN: short response");
        }
        if (open.Header.Status != 0)
        {
            throw new VirtioMediaException((int)open.Header.Status, "OPEN");
        }
        if (used < VirtioMediaWire.RespOpenSize)
        {
            throw new VirtioMediaException(Errno.EINVAL, "OPEN: used length below 16");
        }
        lock (_eventLock)
        {
            _eventsBySession[open.SessionId] = new Queue<byte[]>();
        }
        return new TestbedSession(this, open.SessionId);
    }

    internal void Close(uint sessionId)
    {
        Span<byte> req = stackalloc byte[VirtioMediaWire.CmdCloseSize];
        MemoryMarshal.Write(req, new CmdClose { Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Close }, SessionId = sessionId });
        SendCommand(req, Span<byte>.Empty);
        lock (_eventLock)
        {
            _eventsBySession.Remove(sessionId);
        }
    }

    internal byte[] ResponseBuffer => _response;
    internal VirtQueueDriver CommandDriver => _commandDriver;
    internal object CommandLock => _commandLock;

    /// <summary>Posts an eventq chain that is not one of the testbed's event buffers (what a broken driver might
    /// post): it is not re-posted when the device returns it, and its completion goes to
    /// <see cref="ForeignEventCompletions"/>.</summary>
    internal void PostForeignEventChain(ReadOnlySpan<DriverBuffer> buffers)
    {
        lock (_eventLock)
        {
            _foreignEventHead[_eventDriver.AddChain(buffers)] = true;
            _eventDriver.Kick();
        }
    }

    /// <summary>The completions of <see cref="PostForeignEventChain"/> chains reaped so far.</summary>
    internal IReadOnlyList<DriverCompletion> ForeignEventCompletions
    {
        get
        {
            lock (_eventLock)
            {
                return [.. _foreignEventCompletions];
            }
        }
    }

    /// <summary>Reaps used eventq buffers into the per-session queues and re-posts them (what the driver's event
    /// worker does). Returns the number of events taken. A stepped testbed first produces the frames that are due
    /// and delivers pending events.</summary>
    public int PumpEvents()
    {
        if (_stepped)
        {
            // What the device's threads would have done by now: frames that are due, then event delivery.
            lock (_commandLock)
            {
                Device.ProduceFrames(Stopwatch.GetTimestamp());
                Device.ProcessQueues();
            }
        }
        int moved = 0;
        lock (_eventLock)
        {
            while (_eventDriver.TryTakeUsed(out DriverCompletion c))
            {
                if (_foreignEventHead[c.Head])
                {
                    _foreignEventHead[c.Head] = false;
                    _foreignEventCompletions.Add(c);
                    continue;
                }
                GuestAddress address = _eventBufferOfHead[c.Head];
                uint length = Math.Min(c.WrittenLength, VirtioMediaWire.EventMaxSize);
                byte[] bytes = GuestMemory.GetSpan(address, length).ToArray();
                if (length >= VirtioMediaWire.EventHeaderSize)
                {
                    EventHeader h = MemoryMarshal.Read<EventHeader>(bytes);
                    if (_eventsBySession.TryGetValue(h.SessionId, out Queue<byte[]>? q))
                    {
                        q.Enqueue(bytes);
                    }
                }
                PostEventBuffer(address);
                moved++;
            }
            if (moved > 0)
            {
                _eventDriver.Kick();
            }
        }
        return moved;
    }

    /// <summary>Waits for the next event of <paramref name="sessionId"/>; null on timeout.</summary>
    internal byte[]? WaitEvent(uint sessionId, TimeSpan timeout, Func<byte[], bool>? accept = null)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            PumpEvents();
            lock (_eventLock)
            {
                if (_eventsBySession.TryGetValue(sessionId, out Queue<byte[]>? q))
                {
                    int count = q.Count;
                    for (int i = 0; i < count; i++)
                    {
                        byte[] e = q.Dequeue();
                        if (accept is null || accept(e))
                        {
                            return e;
                        }
                        q.Enqueue(e);
                    }
                }
            }
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
            {
                return null;
            }
            _eventArrived.WaitOne((int)Math.Min(left, 50));
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Device.Dispose();
        GuestMemory.Dispose();
        foreach (EventFd e in _queueEvents)
        {
            e.Dispose();
        }
        _eventArrived.Dispose();
        _notifier.Used[0].Dispose();
    }
}

/// <summary>A command failed with a Linux errno.</summary>
public sealed class VirtioMediaException(int errno, string operation)
    : Exception($"{operation} failed with errno {errno}")
{
    public int Errno { get; } = errno;
}

/// <summary>The testbed's stand-in for the transport's interrupts.</summary>
internal sealed class TestbedNotifier : IVirtioNotifier
{
    public readonly AutoResetEvent[] Used = [new(false), new(false)];

    public string? NeedsResetReason { get; private set; }

    public void SignalUsedQueue(int queueIndex)
    {
        if ((uint)queueIndex < (uint)Used.Length)
        {
            Used[queueIndex].Set();
        }
    }

    public void SignalConfigChange()
    {
    }

    public void SignalNeedsReset(string reason) => NeedsResetReason = reason;
}
