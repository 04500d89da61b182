using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.PerfLab.Measurement;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 1, transport cost per frame: the device's CPU time per frame with pixel production off (a static image,
/// unpaced, so the camera delivers as fast as buffers come back), against the cost of copying the same frame once in
/// the same run. The ratio says what the zero-copy path costs in units of the copy it avoids. A second anchor, the
/// CPU cost of one thread wake-up in the same run, says how much of it is the host's scheduler: the threaded device
/// pays about two per frame (the notify that wakes the command thread, the clock's wake-up); the stepped testbed
/// runs the device on the driver's thread and pays none, which leaves the device's own work (plus the simulated
/// driver's).
/// </summary>
internal static class TransportSuite
{
    public const string Name = "transport";

    /// <summary>The goal at 1920×1080 NV12: the transport costs at most 2 % of one copy of the frame.</summary>
    public const double Goal = 0.02;

    /// <summary>Firmware-guest warm-up: 2 s at the camera's 120 fps.</summary>
    private const int WarmupFrames = 240;

    private static readonly (uint Width, uint Height)[] Sizes = [(640, 480), (1920, 1080), (3840, 2160)];

    /// <summary>The cases to run: through the testbed always, through a firmware guest in a VM where one can
    /// run (otherwise a note says why not).</summary>
    public static IEnumerable<(string Label, Func<Action, TransportResult> Run, int Frames)> Cases(bool quick, LabPaths paths, List<string> notes)
    {
        int frames = quick ? 300 : 3000;
        foreach ((uint w, uint h) in paths.RunsWithoutVm ? Sizes : [])
        {
            var c = new StreamCase(w, h, FourCc.Nv12, Fps: 120, Paced: false, StaticImage: true, frames, Warmup: 1000);
            yield return ($"transport {c.Label} testbed", tick => Measure(c, tick), frames);
            StreamCase stepped = c with { Stepped = true };
            yield return ($"transport {c.Label} testbed, stepped", tick => Measure(stepped, tick), frames);
        }
        if (paths.WhyNoVm() is { } why)
        {
            notes.Add($"transport through the firmware guest not run: {why}");
            yield break;
        }
        // At the camera's 120 fps: 2 s of warm-up, then 1 s (quick) or 10 s measured. The JIT build, and the
        // NativeAOT binary where it has been published (no JIT thread at all).
        int vmFrames = quick ? 120 : 1200;
        var builds = new List<(string Driver, string[] Command)> { ("firmware guest", ["dotnet", paths.VmmDll]) };
        if (File.Exists(paths.VmmNativeAot))
        {
            builds.Add(("firmware guest, NativeAOT", [paths.VmmNativeAot]));
        }
        else
        {
            notes.Add($"transport through the NativeAOT build not run: {paths.VmmNativeAot} is missing");
        }
        foreach ((string driver, string[] command) in builds)
        {
            foreach ((uint w, uint h) in Sizes)
            {
                yield return ($"transport {w}x{h} NV12 {driver}", tick => MeasureInVm(paths, driver, command, w, h, vmFrames, tick), 1);
            }
        }
    }

    private static TransportResult Measure(StreamCase c, Action tick)
    {
        StreamMeasurement m = TestbedStream.Run(c, tick);
        return Result(c.Stepped ? "testbed, stepped" : "testbed", c.Width, c.Height, m.SizeImage, m.Frames, m.DeviceCpuNsPerFrame, m.DeviceCpuNsPerFrame, m.Counters);
    }

    private static TransportResult MeasureInVm(LabPaths paths, string driver, string[] vmm, uint w, uint h, int frames, Action tick)
    {
        FirmwareMeasurement m = FirmwareStream.Run(paths, vmm, w, h, "NV12", fps: 120, pattern: "static", warmup: WarmupFrames, frames);
        tick();
        // NV12 at these sizes has no padding: sizeimage is w*h*3/2 (as the device's S_FMT answers).
        // The counters live in the vmm child process (dotnet-counters can watch them there); not read here.
        TransportResult r = Result(driver, w, h, w * h * 3 / 2, m.Frames, m.VmmCpuNsPerFrame, m.DeviceCpuNsPerFrame, null);
        var byThread = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach ((string name, long ns) in m.CpuNsByThreadName)
        {
            byThread[name] = Math.Round((double)ns / m.Frames);
        }
        return r with { CpuNsPerFrameByThread = byThread };
    }

    private static TransportResult Result(string driver, uint w, uint h, uint sizeImage, int frames, double nsPerFrame, double deviceNsPerFrame,
        CounterFigures? counters)
    {
        double copy = CopyAnchor.NanosecondsPerCopy(sizeImage, minimumCopies: 20);
        double wakeup = WakeupAnchor.NanosecondsPerWakeup(roundTrips: 1000, trials: 5);
        double ratio = nsPerFrame / copy;
        return new TransportResult(driver, w, h, "NV12", sizeImage, frames, Math.Round(nsPerFrame), Math.Round(deviceNsPerFrame),
            Math.Round(copy), Math.Round(ratio, 4), Goal, ratio <= Goal, Math.Round(wakeup), Math.Round(deviceNsPerFrame / wakeup, 2), counters);
    }
}
