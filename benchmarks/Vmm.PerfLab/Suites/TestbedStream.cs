using System.Diagnostics;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.PerfLab.Measurement;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>One streaming run to measure: a test-pattern camera in the embedded testbed (the device with its own
/// threads, as in a VM; the testbed plays the guest driver on the calling thread). Stepped: the device runs no
/// threads and does its work on the calling thread too, so there is no thread wake-up in a frame's path.</summary>
internal sealed record StreamCase(uint Width, uint Height, uint Format, uint Fps, bool Paced, bool StaticImage, int Frames, int Warmup,
    bool Stepped = false)
{
    public const int Buffers = 4;

    public string Label => $"{Width}x{Height} {FourCc.ToString(Format)}";
}

/// <summary>What one run measured. Device CPU is the CPU time of the device's threads only (command thread and
/// frame clock), not the simulated driver's; for a stepped device it is the calling thread's, which does the
/// device's work and the simulated driver's.</summary>
internal sealed record StreamMeasurement(
    uint SizeImage, int Frames, double WallSeconds, long DeviceCpuNs, double LatencyP50Ms, double LatencyP99Ms, long SequenceGaps,
    MeteredFigures Metered)
{
    public double Fps => Frames / WallSeconds;
    public double DeviceCpuNsPerFrame => (double)DeviceCpuNs / Frames;
    public double DeviceCpuPercent => DeviceCpuNs / (WallSeconds * 1e9) * 100;

    public CounterFigures Counters => new(Metered.Frames,
        Metered.Frames == 0 ? 0 : (double)Metered.BytesDelivered / Metered.Frames,
        Metered.Frames == 0 ? 0 : (double)Metered.BytesCopied / Metered.Frames,
        Math.Round(Metered.CommandLatencyP50Us, 2), Math.Round(Metered.CommandLatencyP99Us, 2));
}

/// <summary>The same window as read from the device's own counters (the Vmm meter).</summary>
internal sealed record MeteredFigures(long Frames, long BytesDelivered, long BytesCopied, double CommandLatencyP50Us, double CommandLatencyP99Us);

internal static class TestbedStream
{
    /// <summary>The device's threads are named "virtio-media commands" and "virtio-media frame clock".</summary>
    private const string DeviceThreadPrefix = "virtio-media";

    private static readonly TimeSpan FrameTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The least warm-up: long enough for tiered compilation to finish with the frame path.</summary>
    private static readonly TimeSpan WarmupTime = TimeSpan.FromSeconds(1.5);

    public static StreamMeasurement Run(StreamCase c, Action? frameDone = null)
    {
        var options = new TestPatternOptions
        {
            Width = c.Width,
            Height = c.Height,
            Fps = c.Fps,
            Format = c.Format,
            Paced = c.Paced,
            StaticImage = c.StaticImage,
            SharedMemorySize = 256UL << 20,
        };
        using VirtioMediaTestbed bed = c.Stepped ? VirtioMediaTestbed.CreateStepped(options, 64UL << 20) : VirtioMediaTestbed.Create(options);
        using TestbedSession s = bed.OpenSession();
        V4l2Format format = s.SetFormat(c.Format, c.Width, c.Height);
        s.RequestBuffers(StreamCase.Buffers, V4l2Memory.Mmap);
        long[] queuedAt = new long[StreamCase.Buffers];
        for (int i = 0; i < StreamCase.Buffers; i++)
        {
            queuedAt[i] = Stopwatch.GetTimestamp();
            s.QueueBuffer(i);
        }
        s.StreamOn();
        // Warm up for Warmup frames and at least WarmupTime: the JIT moves hot methods to optimised code only after
        // they ran a while (tier 0 first, tier 1 after a 100-ms quiet spell), and 1,000 unpaced frames take less.
        long warmupStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < c.Warmup || Stopwatch.GetElapsedTime(warmupStart) < WarmupTime; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(FrameTimeout);
            queuedAt[frame.Index] = Stopwatch.GetTimestamp();
        }
        var latencies = new List<double>(c.Frames);
        long gaps = 0;
        uint? last = null;
        using var counters = new MediaCounters(bed.Device.Metrics.DeviceName);
        Func<long> deviceCpu = c.Stepped ? CpuClock.CurrentThread : () => CpuClock.ThreadsNamed(DeviceThreadPrefix);
        long cpu0 = deviceCpu();
        long t0 = Stopwatch.GetTimestamp();
        for (int n = 0; n < c.Frames; n++)
        {
            using TestbedFrame frame = s.DequeueFrame(FrameTimeout);
            long now = Stopwatch.GetTimestamp();
            latencies.Add(Stopwatch.GetElapsedTime(queuedAt[frame.Index], now).TotalMilliseconds);
            if (last is { } l && frame.Sequence != l + 1)
            {
                gaps += (long)frame.Sequence - l - 1;
            }
            last = frame.Sequence;
            queuedAt[frame.Index] = now; // disposing the frame queues the buffer again
            frameDone?.Invoke();
        }
        long t1 = Stopwatch.GetTimestamp();
        long cpu1 = deviceCpu();
        counters.Stop();
        s.StreamOff();
        var metered = new MeteredFigures(counters.Frames, counters.BytesDelivered, counters.BytesCopied,
            Percentiles.Of(counters.CommandLatenciesUs, 50), Percentiles.Of(counters.CommandLatenciesUs, 99));
        return new StreamMeasurement(format.Pix.SizeImage, c.Frames, Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, cpu1 - cpu0,
            Percentiles.Of(latencies, 50), Percentiles.Of(latencies, 99), gaps, metered);
    }
}
