using System.Diagnostics;
using System.Globalization;
using Vmm.PerfLab.Measurement;

namespace Vmm.PerfLab.Suites;

/// <summary>What a firmware-guest run measured between the end of its warm-up and its STATS line.</summary>
internal sealed record FirmwareMeasurement(int Frames, double WallSeconds, long VmmCpuNs, long DeviceCpuNs, double GuestFps,
    Dictionary<string, long> CpuNsByThreadName)
{
    public double VmmCpuNsPerFrame => (double)VmmCpuNs / Frames;
    public double DeviceCpuNsPerFrame => (double)DeviceCpuNs / Frames;
}

/// <summary>
/// Streams through a real VM: <c>vmm run</c> of the streaming firmware (firmware/out/media-stream.elf, a PVH guest
/// with its own virtio-media driver) as a child process, sampling the child's CPU from <c>/proc</c> when the guest
/// prints the frame that ends its warm-up and when it prints STATS after the last. VMM CPU is every thread of the
/// child but the vCPUs (schedstat, nanoseconds). A vCPU thread's time is almost all guest time, and the split that
/// /proc gives (guest_time, in 10 ms ticks against nanoseconds) is too coarse to subtract; streaming exits to the VMM
/// only for console lines (doorbells are ioeventfds, interrupts irqfds), so the VMM's share of it is left out.
/// </summary>
internal static class FirmwareStream
{
    /// <param name="warmup">Frames streamed before the window opens (the JIT compiles the VMM's hot paths then).</param>
    /// <param name="frames">Frame intervals in the window.</param>
    /// <param name="vmmCommand">How to start vmm: <c>dotnet vmm.dll</c> (the JIT build) or the NativeAOT binary.</param>
    public static FirmwareMeasurement Run(LabPaths paths, string[] vmmCommand, uint width, uint height, string format, uint fps, string pattern, int warmup, int frames)
    {
        string camera = $"test-pattern,width={width},height={height},fps={fps},format={format},pattern={pattern}";
        // The guest prints frame 0 and every (warmup/4)-th frame: the window opens at the fifth FRAME line (frame
        // `warmup`) and closes at STATS, after the last frame. The console path runs four times in the warm-up so
        // that the JIT has compiled it before the window (printing only at the window's edges put that
        // compilation, ~8 ms, inside it).
        int every = Math.Max(1, warmup / 4);
        int total = warmup + frames + 1;
        string cmdline = $"width={width} height={height} format={format} frames={total} print_first=1 print_every={every} checksum=printed";
        var start = new ProcessStartInfo(vmmCommand[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (string a in (string[])[.. vmmCommand[1..], "run", "--kernel", paths.StreamingFirmware, "--mem", "64", "--media", camera, "--cmdline", cmdline, "--log-level", "warn"])
        {
            start.ArgumentList.Add(a);
        }
        using Process vmm = Process.Start(start)!;
        Task<string> errors = vmm.StandardError.ReadToEndAsync();
        Dictionary<int, ThreadSample>? first = null, last = null;
        int frameLines = 0;
        long t0 = 0, t1 = 0;
        double guestFps = 0;
        string? line;
        while ((line = vmm.StandardOutput.ReadLine()) is not null)
        {
            if (line.StartsWith("FRAME ", StringComparison.Ordinal) && ++frameLines == 1 + warmup / every)
            {
                t0 = Stopwatch.GetTimestamp();
                first = Sample(vmm.Id);
            }
            else if (line.StartsWith("STATS ", StringComparison.Ordinal))
            {
                t1 = Stopwatch.GetTimestamp();
                last = Sample(vmm.Id);
            }
            else if (line.StartsWith("RESULT ", StringComparison.Ordinal))
            {
                int at = line.IndexOf(" fps=", StringComparison.Ordinal);
                if (at >= 0)
                {
                    string value = line[(at + 5)..].Split(' ')[0];
                    guestFps = double.Parse(value, CultureInfo.InvariantCulture);
                }
            }
        }
        vmm.WaitForExit();
        if (vmm.ExitCode != 0 || first is null || last is null)
        {
            throw new InvalidOperationException($"vmm run of the streaming firmware failed (exit {vmm.ExitCode}): {errors.Result.Trim()}");
        }
        (long vmmNs, long deviceNs, Dictionary<string, long> byName) = Delta(first, last);
        return new FirmwareMeasurement(frames, Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, vmmNs, deviceNs, guestFps, byName);
    }

    /// <summary>One thread at one moment: its name (comm), CPU ns, and whether it is a vCPU or a device thread.</summary>
    private readonly record struct ThreadSample(string Name, long Ns, bool Vcpu, bool Device);

    /// <summary>Each thread of process <paramref name="pid"/> now, by thread id.</summary>
    private static Dictionary<int, ThreadSample> Sample(int pid)
    {
        var threads = new Dictionary<int, ThreadSample>();
        foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                string name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd();
                threads[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = new ThreadSample(name, CpuClock.Schedstat(Path.Combine(task, "schedstat")),
                    name.StartsWith("vcpu", StringComparison.Ordinal), name.StartsWith("virtio-media", StringComparison.Ordinal));
            }
            catch (IOException)
            {
                // The thread ended between listing and reading.
            }
        }
        return threads;
    }

    /// <summary>VMM CPU ns, device-thread CPU ns, and CPU ns by thread name (vCPUs too, for the record) between two
    /// samples, thread by thread: a thread that ended in between (a .NET pool worker) must not take its whole
    /// lifetime out of the sum, and one that started counts from zero.</summary>
    private static (long Vmm, long Device, Dictionary<string, long> ByName) Delta(Dictionary<int, ThreadSample> first,
        Dictionary<int, ThreadSample> last)
    {
        long vmm = 0, device = 0;
        var byName = new Dictionary<string, long>();
        foreach ((int tid, ThreadSample t) in last)
        {
            long d = t.Ns - (first.TryGetValue(tid, out ThreadSample f) ? f.Ns : 0);
            byName[t.Name] = byName.GetValueOrDefault(t.Name) + d;
            if (t.Vcpu)
            {
                continue;
            }
            vmm += d;
            if (t.Device)
            {
                device += d;
            }
        }
        return (vmm, device, byName);
    }

}

/// <summary>Which cases run: all, all but those needing a VM (the lab runs those where the host has no KVM), or only
/// those.</summary>
internal enum LabScope
{
    All,
    SkipVm,
    VmOnly,
}

/// <summary>Where the lab finds the VMM (the JIT build's vmm.dll and the NativeAOT binary) and the guest payloads
/// (built by <c>./build.sh bench-lab</c>).</summary>
internal sealed record LabPaths(string Root, string VmmDll, string VmmNativeAot, string StreamingFirmware, LabScope Scope)
{
    public static LabPaths Find(LabScope scope)
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Vmm.sln")))
        {
            root = Path.GetDirectoryName(root.TrimEnd('/')) ?? throw new InvalidOperationException("cannot find the repository (Vmm.sln) above the lab's binaries");
        }
        return new LabPaths(
            root,
            Environment.GetEnvironmentVariable("VMM_DLL") ?? Path.Combine(root, "src/Vmm.Cli/bin/Release/net10.0/vmm.dll"),
            // Where `dotnet publish src/Vmm.Cli -c Release -p:PublishProfile=NativeAot` puts it.
            Environment.GetEnvironmentVariable("VMM_NATIVE_AOT") ?? Path.Combine(root, "src/Vmm.Cli/bin/Release/net10.0/linux-x64/publish/vmm"),
            Path.Combine(Environment.GetEnvironmentVariable("VMM_FIRMWARE_DIR") ?? Path.Combine(root, "firmware/out"), "media-stream.elf"),
            scope);
    }

    /// <summary>Whether cases that need no VM (the testbed's) run.</summary>
    public bool RunsWithoutVm => Scope != LabScope.VmOnly;

    /// <summary>Null when a VM can run here; otherwise why not.</summary>
    public string? WhyNoVm()
    {
        if (Scope == LabScope.SkipVm)
        {
            return "left to the lab run (--skip-vm)";
        }
        if (!File.Exists(VmmDll))
        {
            return $"{VmmDll} is missing (dotnet build src/Vmm.Cli -c Release)";
        }
        if (!File.Exists(StreamingFirmware))
        {
            return $"{StreamingFirmware} is missing (./build.sh firmware)";
        }
        try
        {
            using FileStream kvm = File.Open("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"/dev/kvm cannot be opened here ({e.Message}): run the lab through lab/run.sh";
        }
    }
}
