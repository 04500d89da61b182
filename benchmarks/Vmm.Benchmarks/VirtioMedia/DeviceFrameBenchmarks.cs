using System.Diagnostics;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.Testing.VirtioMedia;

namespace Vmm.Benchmarks.VirtioMedia;

/// <summary>
/// The device's own work for one frame, with nothing of the simulated driver in the measurement: a QBUF command as
/// the command queue carries it, through the command processor; one pass of the frame clock (the camera fills the
/// MMAP buffer and makes the DQBUF event); the event taken from the device's pending events. The memory diagnoser
/// shows the per-frame path allocates nothing (the testbed's own driver side does, which is why
/// <see cref="TestbedStreamBenchmarks"/> is not the proof). The virtqueue pop/add_used around each command have their
/// own 0-byte figures in QueueBenchmarks.
/// </summary>
[MemoryDiagnoser]
public class DeviceFrameBenchmarks
{
    private VirtioMediaTestbed _bed = null!;
    private TestbedSession _session = null!;
    private readonly byte[] _qbuf = new byte[VirtioMediaWire.CmdIoctlSize + Marshal.SizeOf<V4l2Buffer>()];
    private readonly byte[] _response = new byte[VirtioMediaWire.RespHeaderSize + Marshal.SizeOf<V4l2Buffer>()];
    private readonly byte[] _event = new byte[VirtioMediaWire.EventMaxSize];

    /// <summary>Static: each buffer rendered once, so the figure is the transport alone; moving: the camera draws
    /// every frame.</summary>
    [Params(true, false)]
    public bool StaticImage { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        // Stepped: no device threads, so the frame is produced in ProduceFrames on this thread.
        _bed = VirtioMediaTestbed.CreateStepped(new TestPatternOptions
        {
            Width = 1920, Height = 1080, Format = FourCc.Nv12, Paced = false, StaticImage = StaticImage, SharedMemorySize = 64UL << 20,
        });
        _session = _bed.OpenSession();
        _session.SetFormat(FourCc.Nv12, 1920, 1080);
        _session.RequestBuffers(1, V4l2Memory.Mmap);
        _session.StreamOn();
        MemoryMarshal.Write(_qbuf, new CmdIoctl { Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Ioctl }, SessionId = _session.Id, Code = (uint)V4l2IoctlCode.QBuf });
        MemoryMarshal.Write(_qbuf.AsSpan(VirtioMediaWire.CmdIoctlSize), new V4l2Buffer { Index = 0, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap });
        // Use up the posted eventq buffers, so that every later event waits in the device's pending events.
        for (int i = 0; i < 64; i++)
        {
            OneFrame();
        }
    }

    [Benchmark]
    public uint OneFrame()
    {
        _bed.Device.Processor.Process(_qbuf, _response);
        if (MemoryMarshal.Read<RespHeader>(_response).Status != 0)
        {
            throw new InvalidOperationException("QBUF failed");
        }
        _bed.Device.ProduceFrames(Stopwatch.GetTimestamp());
        if (_bed.Device.Processor.Events.Count > 0 && _bed.Device.Processor.Events.TryDequeue(_event) >= VirtioMediaWire.EventDqbufSize)
        {
            return MemoryMarshal.Read<EventDqbuf>(_event).Buffer.Sequence;
        }
        // The first frames go into the eventq buffers the testbed posted (Setup uses them up).
        return 0;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session.Dispose();
        _bed.Dispose();
    }
}
