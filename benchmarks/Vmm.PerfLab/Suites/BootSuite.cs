using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 3, boot: time from process start to the test guest's "VMM-GUEST: init reached" marker, same kernel,
/// initramfs, memory and command line, under vmm and under QEMU microvm, alternated
/// (benchmarks/boot/compare-qemu-microvm.sh does the runs; this reads its lines). vmm is the NativeAOT binary where
/// it has been published (the single binary a user runs; no JIT start-up), else the JIT build; the result says which.
/// </summary>
internal static partial class BootSuite
{
    public const string Name = "boot";
    public const double Goal = 0.8;

    public static IEnumerable<(string Label, Func<Action, BootResult> Run, int Frames)> Cases(bool quick, LabPaths paths, List<string> notes)
    {
        if (paths.WhyNoVm() is { } why)
        {
            notes.Add($"boot not measured: {why}");
            yield break;
        }
        if (!File.Exists("/usr/bin/qemu-system-x86_64"))
        {
            notes.Add("boot not measured: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)");
            yield break;
        }
        int runs = quick ? 1 : 5;
        string build = File.Exists(paths.VmmNativeAot) ? "NativeAOT" : "JIT";
        yield return ($"boot to /init, vmm ({build}) vs QEMU microvm, {runs} run(s) each", tick => Measure(paths, build, runs, tick), runs);
    }

    private static BootResult Measure(LabPaths paths, string build, int runs, Action tick)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(paths.Root, "benchmarks/boot/compare-qemu-microvm.sh"));
        start.ArgumentList.Add(runs.ToString(CultureInfo.InvariantCulture));
        start.Environment["VMM_DLL"] = paths.VmmDll;
        if (build == "NativeAOT")
        {
            start.Environment["VMM_BIN"] = paths.VmmNativeAot;
        }
        using Process p = Process.Start(start)!;
        Task<string> errors = p.StandardError.ReadToEndAsync();
        var vmm = new List<double>();
        var qemu = new List<double>();
        string? line;
        while ((line = p.StandardOutput.ReadLine()) is not null)
        {
            Match m = RunLine().Match(line);
            if (m.Success)
            {
                vmm.Add(ParseSeconds(m.Groups[1].Value));
                qemu.Add(ParseSeconds(m.Groups[2].Value));
                tick();
            }
        }
        p.WaitForExit();
        if (p.ExitCode != 0 || vmm.Count == 0)
        {
            throw new InvalidOperationException($"compare-qemu-microvm.sh failed (exit {p.ExitCode}): {errors.Result.Trim()}");
        }
        double mv = Measurement.Percentiles.Of(vmm, 50), mq = Measurement.Percentiles.Of(qemu, 50);
        double ratio = mv / mq;
        return new BootResult(build, runs, Math.Round(mv, 3), Math.Round(mq, 3), Math.Round(ratio, 3), Goal, ratio <= Goal);
    }

    /// <summary>A timeout counts as infinitely slow.</summary>
    private static double ParseSeconds(string text) =>
        double.TryParse(text, CultureInfo.InvariantCulture, out double s) ? s : double.PositiveInfinity;

    [GeneratedRegex(@"^run \d+: vmm (\S+) s\s+qemu-microvm (\S+) s")]
    private static partial Regex RunLine();
}
