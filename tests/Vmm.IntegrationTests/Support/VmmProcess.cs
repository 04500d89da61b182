using System.Diagnostics;
using System.Text;

namespace Vmm.IntegrationTests.Support;

/// <summary>The outcome of one <c>vmm</c> run: exit code, console output, log, and when each marker line appeared.</summary>
internal sealed record VmmRun(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, IReadOnlyDictionary<string, TimeSpan> Markers, bool TimedOut)
{
    public override string ToString() =>
        $"exit={ExitCode} timedOut={TimedOut} elapsed={Elapsed.TotalSeconds:F1}s\n--- stdout ---\n{Tail(Stdout)}\n--- stderr ---\n{Tail(Stderr)}";

    private static string Tail(string s) => s.Length <= 6000 ? s : "…" + s[^6000..];
}

/// <summary>Runs the real <c>vmm</c> executable (built next to the tests) as a child process, as a user would.</summary>
internal static class VmmProcess
{
    /// <summary>Path of vmm.dll copied into the test output directory by the project reference.</summary>
    public static string VmmDll => Path.Combine(AppContext.BaseDirectory, "vmm.dll");

    public static VmmRun Run(IEnumerable<string> args, TimeSpan timeout, params string[] markers) =>
        Run(args, timeout, [], markers);

    /// <summary>Boots a Linux guest until it exits, writing the run and the time to the test kit's init marker to
    /// the test's output.</summary>
    public static VmmRun BootLinux(Xunit.Abstractions.ITestOutputHelper output, IEnumerable<string> args, TimeSpan timeout)
    {
        VmmRun run = Run(args, timeout, InitMarker);
        output.WriteLine(run.ToString());
        if (run.Markers.TryGetValue(InitMarker, out TimeSpan t))
        {
            output.WriteLine($"vmm start → init marker: {t.TotalSeconds:F2} s");
        }
        return run;
    }

    /// <summary>The line the test kit's initramfs images print first.</summary>
    public const string InitMarker = "VMM-GUEST: init reached";

    /// <summary>Runs vmm; each (marker, input) pair writes <c>input</c> to vmm's stdin once <c>marker</c> has appeared
    /// on its stdout (in order), then stdin is closed.</summary>
    public static VmmRun Run(IEnumerable<string> args, TimeSpan timeout, IReadOnlyList<(string Marker, string Input)> inputs, params string[] markers)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(VmmDll);
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var seen = new Dictionary<string, TimeSpan>();
        var sw = Stopwatch.StartNew();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (stdout)
            {
                stdout.AppendLine(e.Data);
                foreach (string m in markers)
                {
                    if (!seen.ContainsKey(m) && e.Data.Contains(m, StringComparison.Ordinal))
                    {
                        seen[m] = sw.Elapsed;
                    }
                }
            }
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stderr)
                {
                    stderr.AppendLine(e.Data);
                }
            }
        };
        string[] allMarkers = [.. markers, .. inputs.Select(i => i.Marker)];
        markers = allMarkers;
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var feeder = new Thread(() =>
        {
            try
            {
                foreach ((string marker, string input) in inputs)
                {
                    while (!p.HasExited && sw.Elapsed < timeout)
                    {
                        lock (stdout)
                        {
                            if (seen.ContainsKey(marker))
                            {
                                break;
                            }
                        }
                        Thread.Sleep(50);
                    }
                    p.StandardInput.Write(input);
                    p.StandardInput.Flush();
                }
                p.StandardInput.Close();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                // vmm exited before all input was written; the assertions on its output say what happened.
            }
        }) { IsBackground = true };
        feeder.Start();
        bool exited = p.WaitForExit(timeout);
        if (!exited)
        {
            p.Kill(entireProcessTree: true);
        }
        // Bounded: a process stuck in the kernel after SIGKILL must fail this test, not hang the whole run.
        if (!p.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            throw new TimeoutException($"vmm did not exit within a minute of {(exited ? "exiting" : "SIGKILL")}");
        }
        p.WaitForExit(); // the untimed overload also waits for the output readers' end of stream
        sw.Stop();
        lock (stdout)
        {
            return new VmmRun(exited ? p.ExitCode : -1, stdout.ToString(), stderr.ToString(), sw.Elapsed, seen, !exited);
        }
    }
}
