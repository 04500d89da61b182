using Vmm.PerfLab.Measurement;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 3, footprint: the VMM's resident memory without guest RAM, and the time from starting it to the guest's
/// first instruction, for the JIT build (<c>dotnet vmm.dll</c>) and the NativeAOT binary, each run several times,
/// alternating, while the firmware guest streams (see <see cref="FootprintProbe"/> for what is measured how).
/// </summary>
internal static class FootprintSuite
{
    public const string Name = "footprint";

    /// <summary>The goals, for the NativeAOT build: at most 16 MiB of VMM RSS and 50 ms to the first guest instruction.</summary>
    public const double RssGoalMiB = 16, StartupGoalMs = 50;

    public const string Jit = "JIT", NativeAot = "NativeAOT";

    /// <summary>One case: every run of both builds, so that the runs can alternate (a slow spell of the machine then
    /// hits both); it yields one result per build.</summary>
    public static IEnumerable<(string Label, Func<Action, List<FootprintResult>> Run, int Frames)> Cases(bool quick, LabPaths paths, List<string> notes)
    {
        if (paths.WhyNoVm() is { } why)
        {
            notes.Add($"footprint not measured: {why}");
            yield break;
        }
        var builds = new List<(string Build, string Binary, string[] Command)> { (Jit, paths.VmmDll, ["dotnet", paths.VmmDll]) };
        if (File.Exists(paths.VmmNativeAot))
        {
            builds.Add((NativeAot, paths.VmmNativeAot, [paths.VmmNativeAot]));
        }
        else
        {
            notes.Add($"footprint of the NativeAOT build not measured: {paths.VmmNativeAot} is missing " +
                      "(dotnet publish src/Vmm.Cli -c Release -p:PublishProfile=NativeAot, or ./build.sh bench-lab)");
        }
        int runs = quick ? 3 : 10;
        yield return ($"footprint {string.Join(" and ", builds.ConvertAll(b => b.Build))}, {runs} runs each",
            tick => Measure(builds, paths.StreamingFirmware, runs, tick), builds.Count * runs);
    }

    private static List<FootprintResult> Measure(List<(string Build, string Binary, string[] Command)> builds, string firmware, int runs, Action tick)
    {
        // One unmeasured run of each first: the binaries into the page cache, and the lab's own Process.Start compiled.
        foreach (var b in builds)
        {
            FootprintProbe.Run(b.Command, firmware, sample: false);
        }
        var samples = builds.ConvertAll(_ => new List<FootprintSample>());
        for (int i = 0; i < runs; i++)
        {
            for (int b = 0; b < builds.Count; b++)
            {
                samples[b].Add(FootprintProbe.Run(builds[b].Command, firmware, sample: true)!);
                tick();
            }
        }
        var results = new List<FootprintResult>();
        for (int b = 0; b < builds.Count; b++)
        {
            List<FootprintSample> s = samples[b];
            double rss = MiB(Median(s, x => x.VmmRss)), startup = Median(s, x => x.StartToFirstGuestEntryMs);
            results.Add(new FootprintResult(
                builds[b].Build, builds[b].Binary, new FileInfo(builds[b].Binary).Length, runs,
                Math.Round(rss, 2), Math.Round(MiB(Median(s, x => x.VmmAnonymousRss)), 2), Math.Round(MiB(Median(s, x => x.VmmFileRss)), 2),
                Math.Round(MiB(Median(s, x => x.GuestRamRss)), 2), Math.Round(MiB(Median(s, x => x.SharedMemoryRss)), 2),
                Math.Round(startup, 1),
                [.. s.ConvertAll(x => Math.Round(MiB(x.VmmRss), 2))], [.. s.ConvertAll(x => Math.Round(x.StartToFirstGuestEntryMs, 1))],
                RssGoalMiB, StartupGoalMs, rss <= RssGoalMiB, startup <= StartupGoalMs));
        }
        return results;
    }

    private static double Median(List<FootprintSample> samples, Func<FootprintSample, double> value) =>
        Percentiles.Of(samples.ConvertAll(x => value(x)), 50);

    private static double MiB(double bytes) => bytes / (1024 * 1024);
}
