using System.Diagnostics;
using System.Text.Json;
using Spectre.Console;
using Vmm.PerfLab.Report;
using Vmm.PerfLab.Suites;

namespace Vmm.PerfLab;

/// <summary>
/// The performance lab: runs the chosen suites in one go with a progress display, writes results.json (with the
/// machine's facts) and the plots (PNG and SVG), and prints a summary. See benchmarks/README.md.
/// <code>vmm-perflab [--quick] [--suites transport,streaming,boot,exits,footprint] [--skip-vm | --vm-only] [--out DIR]</code>, or
/// <code>vmm-perflab --replot DIR</code> to draw the plots of an earlier run again from its results.json.
/// --skip-vm leaves out the cases that need a VM and --vm-only runs only those: where the host has no KVM,
/// ./build.sh bench-lab runs the first here and the second in the lab.
/// </summary>
internal static class Program
{
    private static readonly string[] AllSuites = [TransportSuite.Name, StreamingSuite.Name, BootSuite.Name, ExitSuite.Name, FootprintSuite.Name];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static int Main(string[] args)
    {
        bool quick = false;
        string output = "perf-lab-results";
        string[] suites = AllSuites;
        string? child = null;
        string? replot = null;
        LabScope scope = LabScope.All;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--out" when i + 1 < args.Length:
                    output = args[++i];
                    break;
                case "--suites" when i + 1 < args.Length:
                    suites = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    string? unknown = Array.Find(suites, s => Array.IndexOf(AllSuites, s) < 0);
                    if (unknown is not null)
                    {
                        Console.Error.WriteLine($"vmm-perflab: error: unknown suite '{unknown}' (known: {string.Join(", ", AllSuites)})");
                        return 2;
                    }
                    break;
                case "--skip-vm":
                    scope = LabScope.SkipVm;
                    break;
                case "--vm-only":
                    scope = LabScope.VmOnly;
                    break;
                case "--replot" when i + 1 < args.Length: // draw the plots of an earlier run again, from its results.json
                    replot = args[++i];
                    break;
                case "--child-streaming": // internal: the scalar reference, in a process without hardware intrinsics
                    child = StreamingSuite.Name;
                    break;
                default:
                    Console.Error.WriteLine($"vmm-perflab: error: unknown argument '{args[i]}' (usage: vmm-perflab [--quick] [--suites {string.Join(',', AllSuites)}] [--skip-vm | --vm-only] [--out DIR] | --replot DIR)");
                    return 2;
            }
        }
        if (child is not null)
        {
            return RunStreamingChild(quick);
        }
        if (replot is not null)
        {
            return Replot(replot);
        }

        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Width = 160; // a CI log: wide enough for the tables
        }
        LabPaths paths = LabPaths.Find(scope);
        MachineFacts machine = Machine.Describe();
        var results = new LabResults(machine, quick, suites);
        AnsiConsole.MarkupLine($"[bold]Vmm performance lab[/] {(quick ? "(quick)" : "(full)")} on [blue]{Markup.Escape(machine.HostKind)}[/], {Markup.Escape(machine.Cpu)}, {machine.Cores} cores, commit {machine.Commit}");
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                if (suites.Contains(TransportSuite.Name))
                {
                    RunCases(ctx, TransportSuite.Cases(quick, paths, results.Notes), results.Transport.Add);
                }
                if (suites.Contains(BootSuite.Name))
                {
                    RunCases(ctx, BootSuite.Cases(quick, paths, results.Notes), results.Boot.Add);
                }
                if (suites.Contains(ExitSuite.Name))
                {
                    RunCases(ctx, ExitSuite.Cases(quick, paths, Path.Combine(output, "build"), results.Notes), results.Exits.Add);
                }
                if (suites.Contains(StreamingSuite.Name) && !paths.RunsWithoutVm)
                {
                    results.Notes.Add("streaming (testbed) not run: --vm-only");
                }
                else if (suites.Contains(StreamingSuite.Name))
                {
                    RunCases(ctx, StreamingSuite.Cases(quick), results.Streaming.Add);
                    ProgressTask scalar = ctx.AddTask("streaming, scalar reference (child process)", maxValue: StreamingSuite.CaseCount);
                    results.Streaming.AddRange(RunScalarReference(quick, () => scalar.Increment(1)));
                    scalar.StopTask();
                }
                if (suites.Contains(FootprintSuite.Name))
                {
                    RunCases(ctx, FootprintSuite.Cases(quick, paths, results.Notes), results.Footprint.AddRange);
                }
            });

        Directory.CreateDirectory(output);
        string json = Path.Combine(output, "results.json");
        File.WriteAllText(json, JsonSerializer.Serialize(results, Json));
        List<string> plots = Plots.Write(results, output);
        Summary.Print(results);
        foreach (string note in results.Notes)
        {
            AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
        }
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(json)} and {plots.Count} plot files in {Markup.Escape(output)}");
        return 0;
    }

    /// <summary>Reads DIR/results.json and writes its plots again (after a change to the plots, without a new run).</summary>
    private static int Replot(string directory)
    {
        string json = Path.Combine(directory, "results.json");
        if (!File.Exists(json))
        {
            Console.Error.WriteLine($"vmm-perflab: error: {json} does not exist");
            return 2;
        }
        LabResults? results = JsonSerializer.Deserialize<LabResults>(File.ReadAllText(json), Json);
        if (results is null)
        {
            Console.Error.WriteLine($"vmm-perflab: error: {json} holds no results");
            return 2;
        }
        List<string> plots = Plots.Write(results, directory);
        AnsiConsole.MarkupLine($"wrote {plots.Count} plot files in {Markup.Escape(directory)}");
        return 0;
    }

    /// <summary>Runs each case with a progress bar of its steps, handing each result to <paramref name="add"/>.</summary>
    private static void RunCases<T>(ProgressContext ctx, IEnumerable<(string Label, Func<Action, T> Run, int Steps)> cases, Action<T> add)
    {
        foreach ((string label, Func<Action, T> run, int steps) in cases)
        {
            ProgressTask task = ctx.AddTask(Markup.Escape(label), maxValue: steps);
            add(run(() => task.Increment(1)));
            task.StopTask();
        }
    }

    /// <summary>Runs the streaming suite again in a child process started with DOTNET_EnableHWIntrinsic=0: the
    /// same code, with every Vector128/256 path reporting no acceleration and taking its scalar loop.</summary>
    private static List<StreamingResult> RunScalarReference(bool quick, Action caseDone)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(Program).Assembly.Location);
        }
        start.ArgumentList.Add("--child-streaming");
        if (quick)
        {
            start.ArgumentList.Add("--quick");
        }
        start.Environment["DOTNET_EnableHWIntrinsic"] = "0";
        using Process child = Process.Start(start)!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        string? line;
        var errors = new List<string>();
        while ((line = child.StandardError.ReadLine()) is not null)
        {
            if (line == "case done")
            {
                caseDone();
            }
            else
            {
                errors.Add(line);
            }
        }
        child.WaitForExit();
        if (child.ExitCode != 0)
        {
            throw new InvalidOperationException($"the scalar reference run failed (exit {child.ExitCode}): {string.Join(" / ", errors)}");
        }
        return JsonSerializer.Deserialize<List<StreamingResult>>(stdout.Result, Json)
            ?? throw new InvalidOperationException("the scalar reference run printed no results");
    }

    private static int RunStreamingChild(bool quick)
    {
        var rows = new List<StreamingResult>();
        foreach (var (_, run, _) in StreamingSuite.Cases(quick))
        {
            rows.Add(run(static () => { }));
            Console.Error.WriteLine("case done");
        }
        Console.Out.Write(JsonSerializer.Serialize(rows, Json));
        return 0;
    }
}
