using BenchmarkDotNet.Attributes;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Benchmarks.VirtioMedia;

/// <summary>End to end through the embedded testbed: QBUF → frame rendered into the MMAP buffer in shared memory →
/// DQBUF event → dequeue and re-QBUF, with pacing off so the figure is the cost per frame.</summary>
[MemoryDiagnoser]
public class TestbedStreamBenchmarks
{
    private VirtioMediaTestbed _bed = null!;
    private TestbedSession _session = null!;

    [Params(640, 1920)]
    public int Width { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        uint h = Width == 1920 ? 1080u : 480u;
        _bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = (uint)Width, Height = h, Fps = 120, Paced = false, Format = FourCc.Nv12, SharedMemorySize = 256UL << 20 });
        _session = _bed.OpenSession();
        _session.SetFormat(FourCc.Nv12, (uint)Width, h);
        _session.RequestBuffers(4, V4l2Memory.Mmap);
        _session.QueueAllBuffers();
        _session.StreamOn();
    }

    [Benchmark]
    public uint QbufFrameDqbuf()
    {
        using TestbedFrame frame = _session.DequeueFrame(TimeSpan.FromSeconds(5));
        return frame.Sequence;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session.Dispose();
        _bed.Dispose();
    }
}
