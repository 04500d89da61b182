using System.Diagnostics;
using Vmm.PerfLab.Measurement;
using Vmm.PerfLab.Report;

namespace Vmm.PerfLab.Suites;

/// <summary>
/// Suite 4, exit cost: the same PVH guest (benchmarks/exits/exit-loop.S) writes N bytes to an unclaimed port, one VM
/// exit each, under <c>vmm</c> and under the smallest C KVM loop that can run it (benchmarks/exits/kvm-loop.c), both
/// built with gcc in this run. Each is timed as a whole process with N writes and with none, alternately, and the
/// cost of one exit is the difference of the medians over N, so start-up (the JIT's included) cancels out.
/// </summary>
internal static class ExitSuite
{
    public const string Name = "exits";
    public const double Goal = 1.15;

    public static IEnumerable<(string Label, Func<Action, ExitResult> Run, int Frames)> Cases(bool quick, LabPaths paths, string buildDirectory, List<string> notes)
    {
        if (paths.WhyNoVm() is { } why)
        {
            notes.Add($"exit cost not measured: {why}");
            yield break;
        }
        int exits = quick ? 100_000 : 500_000;
        int rounds = quick ? 3 : 7;
        yield return ($"exit cost, {exits:N0} port writes", tick => Measure(paths, buildDirectory, exits, rounds, tick), rounds * 4);
    }

    private static ExitResult Measure(LabPaths paths, string buildDirectory, int exits, int rounds, Action tick)
    {
        Directory.CreateDirectory(buildDirectory);
        string source = Path.Combine(paths.Root, "benchmarks/exits");
        string loop = Path.Combine(buildDirectory, "kvm-loop");
        Gcc("-O2", "-Wall", "-Wextra", "-Werror", "-o", loop, Path.Combine(source, "kvm-loop.c"));
        string withExits = GuestElf(paths, source, buildDirectory, exits);
        string without = GuestElf(paths, source, buildDirectory, 0);

        var vmmN = new List<double>();
        var vmm0 = new List<double>();
        var loopN = new List<double>();
        var loop0 = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            // Alternated, so drift in the host's load hits both equally.
            vmmN.Add(Seconds("dotnet", paths.VmmDll, "run", "--kernel", withExits, "--mem", "64", "--log-level", "warn"));
            tick();
            loopN.Add(Seconds(loop, withExits));
            tick();
            vmm0.Add(Seconds("dotnet", paths.VmmDll, "run", "--kernel", without, "--mem", "64", "--log-level", "warn"));
            tick();
            loop0.Add(Seconds(loop, without));
            tick();
        }
        double vmmNs = (Percentiles.Of(vmmN, 50) - Percentiles.Of(vmm0, 50)) / exits * 1e9;
        double loopNs = (Percentiles.Of(loopN, 50) - Percentiles.Of(loop0, 50)) / exits * 1e9;
        double ratio = vmmNs / loopNs;
        return new ExitResult(exits, rounds, Math.Round(vmmNs), Math.Round(loopNs), Math.Round(ratio, 3), Goal, ratio <= Goal);
    }

    private static string GuestElf(LabPaths paths, string source, string buildDirectory, int count)
    {
        string elf = Path.Combine(buildDirectory, $"exit-loop-{count}.elf");
        Gcc("-nostdlib", "-static", "-no-pie", $"-DCOUNT={count}", "-Wl,-T," + Path.Combine(paths.Root, "firmware/linker.ld"),
            "-Wl,--build-id=none", "-Wl,-z,max-page-size=4096", "-Wl,-z,noexecstack", "-Wl,--no-warn-rwx-segments",
            "-o", elf, Path.Combine(source, "exit-loop.S"));
        return elf;
    }

    private static void Gcc(params string[] args)
    {
        (int code, string output) = RunProcess("gcc", args);
        if (code != 0)
        {
            throw new InvalidOperationException($"gcc {string.Join(' ', args)} failed: {output}");
        }
    }

    /// <summary>Wall seconds of one run; the run must exit 0.</summary>
    private static double Seconds(string file, params string[] args)
    {
        long start = Stopwatch.GetTimestamp();
        (int code, string output) = RunProcess(file, args);
        double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (code != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} exited {code}: {output}");
        }
        return seconds;
    }

    private static (int Code, string Output) RunProcess(string file, string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }
        using Process p = Process.Start(start)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, (stdout.Result + stderr).Trim());
    }
}
