using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.PerfLab.Measurement;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 1, transport cost per frame: the device's CPU time per frame with pixel production off (a static image,
/// unpaced, so the camera delivers as fast as buffers come back), against the cost of copying the same frame once in
/// the same run. The ratio says what the zero-copy path costs in units of the copy it avoids.
/// </summary>
internal static class TransportSuite
{
    public const string Name = "transport";

    /// <summary>The goal at 1920×1080 NV12: the transport costs at most 2 % of one copy of the frame.</summary>
    public const double Goal = 0.02;

    private static readonly (uint Width, uint Height)[] Sizes = [(640, 480), (1920, 1080), (3840, 2160)];

    public static int CaseCount => Sizes.Length;

    public static IEnumerable<(string Label, Func<Action, TransportResult> Run, int Frames)> Cases(bool quick)
    {
        int frames = quick ? 300 : 3000;
        foreach ((uint w, uint h) in Sizes)
        {
            var c = new StreamCase(w, h, FourCc.Nv12, Fps: 120, Paced: false, StaticImage: true, frames, Warmup: 1000);
            yield return ($"transport {c.Label}", tick => Measure(c, tick), frames);
        }
    }

    private static TransportResult Measure(StreamCase c, Action tick)
    {
        StreamMeasurement m = TestbedStream.Run(c, tick);
        double copy = CopyAnchor.NanosecondsPerCopy(m.SizeImage, minimumCopies: 20);
        double ratio = m.DeviceCpuNsPerFrame / copy;
        return new TransportResult("testbed", c.Width, c.Height, FourCc.ToString(c.Format), m.SizeImage, m.Frames,
            Math.Round(m.DeviceCpuNsPerFrame), Math.Round(copy), Math.Round(ratio, 4), Goal, ratio <= Goal);
    }
}
