using Spectre.Console;

namespace Vmm.PerfLab.Report;

/// <summary>The console tables at the end of a run.</summary>
internal static class Summary
{
    public static void Print(LabResults r)
    {
        if (r.Transport.Count > 0)
        {
            var t = new Table().Title($"Transport cost per frame ({r.Machine.HostKind})")
                .AddColumns("driver", "frame", "VMM CPU/frame", "device threads", "one copy", "ratio", "goal", "one wake-up", "device/wake-up");
            foreach (TransportResult x in r.Transport)
            {
                bool judged = x.Width == 1920 && x.Height == 1080;
                t.AddRow(x.Driver, $"{x.Width}x{x.Height} {x.Format}", $"{x.TransportNsPerFrame / 1000:F2} µs", $"{x.DeviceThreadsNsPerFrame / 1000:F2} µs",
                    $"{x.CopyNsPerFrame / 1000:F1} µs", $"{x.Ratio:F4}",
                    judged ? (x.Met ? $"[green]≤ {x.Goal} met[/]" : $"[red]≤ {x.Goal} missed[/]") : "",
                    $"{x.WakeupNs / 1000:F2} µs", $"{x.DeviceWakeupsPerFrame:F1}");
            }
            AnsiConsole.Write(t);
        }
        foreach (BootResult x in r.Boot)
        {
            var t = new Table().Title($"Boot to /init, median of {x.Runs} ({r.Machine.HostKind})").AddColumns($"vmm ({x.Build ?? "JIT"})", "QEMU microvm", "ratio", "goal");
            t.AddRow($"{x.VmmSeconds:F2} s", $"{x.QemuMicrovmSeconds:F2} s", $"{x.Ratio:F3}",
                x.Met ? $"[green]≤ {x.Goal} met[/]" : $"[red]≤ {x.Goal} missed[/]");
            AnsiConsole.Write(t);
        }
        foreach (ExitResult x in r.Exits)
        {
            var t = new Table().Title($"Exit cost, {x.Exits:N0} port writes, median of {x.Rounds} ({r.Machine.HostKind})")
                .AddColumns("vmm", "C KVM loop", "ratio", "goal");
            t.AddRow($"{x.VmmNsPerExit / 1000:F2} µs", $"{x.CLoopNsPerExit / 1000:F2} µs", $"{x.Ratio:F3}",
                x.Met ? $"[green]≤ {x.Goal} met[/]" : $"[red]≤ {x.Goal} missed[/]");
            AnsiConsole.Write(t);
        }
        if (r.Streaming.Count > 0)
        {
            var t = new Table().Title($"Streaming, {r.Streaming[0].Buffers} buffers ({r.Machine.HostKind})")
                .AddColumns("generator", "frame", "fps (requested)", "device CPU", "CPU/frame", "QBUF→DQBUF p50", "p99", "gaps", "copied/frame", "command p50/p99");
            foreach (StreamingResult x in r.Streaming)
            {
                t.AddRow(x.Generator, $"{x.Width}x{x.Height} {x.Format}", $"{x.Fps:F1} ({x.RequestedFps})", $"{x.DeviceCpuPercent:F1} %",
                    $"{x.DeviceCpuUsPerFrame:F0} µs", $"{x.LatencyP50Ms:F2} ms", $"{x.LatencyP99Ms:F2} ms", x.SequenceGaps.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    $"{x.Counters.BytesCopiedPerFrame:F0} B", $"{x.Counters.CommandLatencyP50Us:F0}/{x.Counters.CommandLatencyP99Us:F0} µs");
            }
            AnsiConsole.Write(t);
        }
        if (r.Footprint.Count > 0)
        {
            FootprintResult first = r.Footprint[0];
            var t = new Table()
                .Title($"Footprint, medians of {first.Runs} runs ({r.Machine.HostKind}); NativeAOT goals ≤ {first.RssGoalMiB} MiB, ≤ {first.StartupGoalMs} ms")
                .AddColumns("build", "VMM RSS", "anon", "file", "guest RAM", "shm", "start→guest");
            foreach (FootprintResult x in r.Footprint)
            {
                bool judged = x.Build == "NativeAOT";
                if (judged)
                {
                    t.Caption($"the NativeAOT binary: {x.BinaryBytes / 1048576.0:F1} MiB");
                }
                t.AddRow(x.Build, Judged(judged, x.RssMet, $"{x.VmmRssMiB:F1} MiB"), $"{x.VmmAnonymousRssMiB:F1}", $"{x.VmmFileRssMiB:F1}",
                    $"{x.GuestRamRssMiB:F1} MiB", $"{x.SharedMemoryRssMiB:F1} MiB", Judged(judged, x.StartupMet, $"{x.StartupMs:F1} ms"));
            }
            AnsiConsole.Write(t);
        }
    }

    /// <summary>A figure coloured by its goal where one applies.</summary>
    private static string Judged(bool judged, bool met, string figure) => !judged ? figure : met ? $"[green]{figure}[/]" : $"[red]{figure}[/]";
}
