using System.Runtime.Intrinsics;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 2, streaming: the moving test pattern, paced at the requested rate, at 640×480, 1920×1080 and 3840×2160 in
/// NV12 and YUYV: fps against the request, the device's CPU (percent of one core and per frame), QBUF→DQBUF latency
/// with four buffers in flight, and sequence gaps. Run once with the camera's vector code and once in a child process
/// with the JIT's hardware intrinsics off (the scalar reference).
/// </summary>
internal static class StreamingSuite
{
    public const string Name = "streaming";
    public const uint RequestedFps = 60;

    private static readonly (uint Width, uint Height)[] Sizes = [(640, 480), (1920, 1080), (3840, 2160)];
    private static readonly uint[] Formats = [FourCc.Nv12, FourCc.Yuyv];

    public static int CaseCount => Sizes.Length * Formats.Length;

    public static IEnumerable<(string Label, Func<Action, StreamingResult> Run, int Frames)> Cases(bool quick)
    {
        int frames = quick ? 60 : 600;
        string generator = Vector128.IsHardwareAccelerated ? "simd" : "scalar";
        foreach ((uint w, uint h) in Sizes)
        {
            foreach (uint format in Formats)
            {
                var c = new StreamCase(w, h, format, RequestedFps, Paced: true, StaticImage: false, frames, Warmup: 10);
                yield return ($"streaming {c.Label} {generator}", tick => Measure(c, generator, tick), frames);
            }
        }
    }

    private static StreamingResult Measure(StreamCase c, string generator, Action tick)
    {
        StreamMeasurement m = TestbedStream.Run(c, tick);
        return new StreamingResult(generator, c.Width, c.Height, FourCc.ToString(c.Format), m.SizeImage, c.Fps, m.Frames,
            Math.Round(m.Fps, 2), Math.Round(m.DeviceCpuPercent, 2), Math.Round(m.DeviceCpuNsPerFrame / 1000, 1),
            Math.Round(m.LatencyP50Ms, 3), Math.Round(m.LatencyP99Ms, 3), m.SequenceGaps, StreamCase.Buffers, m.Counters);
    }
}
