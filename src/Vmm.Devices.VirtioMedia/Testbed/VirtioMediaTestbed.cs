using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Testbed;

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
    private readonly object _commandLock = new();
    private readonly object _eventLock = new();
    private readonly Dictionary<uint, Queue<byte[]>> _eventsBySession = [];
    private readonly AutoResetEvent _eventArrived = new(false);
    private readonly byte[] _response = new byte[64 * 1024];
    private readonly byte[] _eventBuffer = new byte[VirtioMediaWire.EventMaxSize];
    private bool _disposed;

    private VirtioMediaTestbed(VirtioMediaDevice device, GuestMemory memory)
    {
        Device = device;
        GuestMemory = memory;
        device.Processor.Events.Added += () => _eventArrived.Set();
        device.StartStandalone(memory);
    }

    /// <summary>Creates a testbed around a test-pattern camera with <paramref name="options"/> (defaults: 640×480
    /// YUYV at 30 fps) and <paramref name="guestRamSize"/> bytes of simulated guest RAM at guest-physical 0.</summary>
    public static VirtioMediaTestbed Create(TestPatternOptions? options = null, ulong guestRamSize = 64UL << 20)
    {
        options ??= new TestPatternOptions();
        VirtioMediaDevice device = VirtioMediaDevice.CreateTestPattern(options);
        GuestMemory memory;
        try
        {
            memory = GuestMemory.CreateAnonymous((new GuestAddress(0), guestRamSize));
        }
        catch
        {
            device.Dispose();
            throw;
        }
        return new VirtioMediaTestbed(device, memory);
    }

    /// <summary>Creates a testbed around an existing device (e.g. another backend); the testbed disposes it.</summary>
    public static VirtioMediaTestbed Create(VirtioMediaDevice device, ulong guestRamSize = 64UL << 20) =>
        new(device, GuestMemory.CreateAnonymous((new GuestAddress(0), guestRamSize)));

    public VirtioMediaDevice Device { get; }

    /// <summary>The simulated guest RAM (for SHARED_PAGES buffers).</summary>
    public GuestMemory GuestMemory { get; }

    /// <summary>Reads the 40-byte configuration space.</summary>
    public VirtioMediaConfig ReadConfig()
    {
        Span<byte> bytes = stackalloc byte[VirtioMediaWire.ConfigSize];
        Device.ReadConfig(0, bytes);
        return MemoryMarshal.Read<VirtioMediaConfig>(bytes);
    }

    /// <summary>Sends a raw command: <paramref name="request"/> is the device-readable stream, the response goes into
    /// <paramref name="response"/> (device-writable stream). Returns the used length, as the driver would see it.</summary>
    public int SendCommand(ReadOnlySpan<byte> request, Span<byte> response)
    {
        lock (_commandLock)
        {
            return Device.Processor.Process(request, response);
        }
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
    internal object CommandLock => _commandLock;

    /// <summary>Moves every pending device event into the per-session queues (what the driver's event worker does).
    /// Returns the number of events moved.</summary>
    public int PumpEvents()
    {
        int moved = 0;
        lock (_eventLock)
        {
            while (true)
            {
                int n = Device.Processor.Events.TryDequeue(_eventBuffer);
                if (n == 0)
                {
                    break;
                }
                if (n < VirtioMediaWire.EventHeaderSize)
                {
                    continue;
                }
                EventHeader h = MemoryMarshal.Read<EventHeader>(_eventBuffer);
                if (_eventsBySession.TryGetValue(h.SessionId, out Queue<byte[]>? q))
                {
                    q.Enqueue(_eventBuffer.AsSpan(0, n).ToArray());
                }
                moved++;
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
        _eventArrived.Dispose();
    }
}

/// <summary>A command failed with a Linux errno.</summary>
public sealed class VirtioMediaException(int errno, string operation)
    : Exception($"{operation} failed with errno {errno}")
{
    public int Errno { get; } = errno;
}
