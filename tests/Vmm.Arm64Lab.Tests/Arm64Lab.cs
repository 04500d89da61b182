using System.Diagnostics;
using System.Globalization;

namespace Vmm.Arm64Lab.Tests;

/// <summary>
/// Runs <c>lab-scenarios.sh</c> once in the aarch64 lab (<c>lab/run.sh --arch arm64</c>: Debian's arm64 kernel
/// under QEMU TCG with EL2, a real arm64 KVM with a GICv3 vgic) and keeps each scenario's timestamped log for the
/// tests to read. Its inputs come from <c>./build.sh test</c>: <c>VMM_ARM64_VMM_DIR</c> (vmm published for
/// linux-arm64), <c>VMM_ARM64_GUEST_DIR</c> (firmware/arm64-guest: Debian's arm64 kernel and a busybox initramfs)
/// and <c>VMM_FIRMWARE_DIR</c> (the arm64 and x86_64 firmware guests).
/// </summary>
public static class Arm64Lab
{
    private static readonly Lazy<LabRun> Run = new(Execute, LazyThreadSafetyMode.ExecutionAndPublication);

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why the lab cannot run here, or null. Under CI nothing is skipped: the test runs and fails.</summary>
    public static string? SkipReason
    {
        get
        {
            if (IsCi)
            {
                return null;
            }
            if (Environment.UserName != "root")
            {
                return "the aarch64 lab needs root (QEMU shares / over 9p with passthrough); ./build.sh test runs it";
            }
            foreach (string name in new[] { "VMM_ARM64_VMM_DIR", "VMM_ARM64_GUEST_DIR", "VMM_FIRMWARE_DIR" })
            {
                if (Environment.GetEnvironmentVariable(name) is not { Length: > 0 })
                {
                    return $"{name} is not set: run the tests with ./build.sh test, which publishes vmm for linux-arm64 and builds the arm64 guests";
                }
            }
            return null;
        }
    }

    /// <summary>The log of scenario <paramref name="name"/> (lines "SECONDS text", the last "SECONDS EXIT rc").</summary>
    public static ScenarioLog Scenario(string name)
    {
        LabRun run = Run.Value;
        string path = Path.Combine(run.OutputDir, name + ".log");
        Assert.True(File.Exists(path), $"the lab wrote no {name}.log (lab exit code {run.ExitCode}); its output:\n{run.Output}");
        return new ScenarioLog(name, File.ReadAllLines(path));
    }

    public static bool HasScenario(string name) => File.Exists(Path.Combine(Run.Value.OutputDir, name + ".log"));

    private static string Require(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } v ? v : throw new InvalidOperationException($"{variable} is not set (./build.sh test sets it)");

    private static string RepositoryRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Vmm.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }
        return dir ?? throw new InvalidOperationException("Vmm.sln not found above the test binaries");
    }

    private static LabRun Execute()
    {
        string root = RepositoryRoot();
        string vmm = Path.Combine(Require("VMM_ARM64_VMM_DIR"), "vmm");
        string guest = Require("VMM_ARM64_GUEST_DIR");
        string firmware = Require("VMM_FIRMWARE_DIR");
        string output = Path.Combine(Path.GetTempPath(), $"vmm-arm64-lab-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        var psi = new ProcessStartInfo(Path.Combine(root, "lab/run.sh"))
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in new[]
        {
            "--arch", "arm64", "--with-qemu", "--timeout", "1800", "--",
            Path.Combine(root, "tests/Vmm.Arm64Lab.Tests/lab-scenarios.sh"), output, vmm, guest,
            Path.Combine(firmware, "media-stream-arm64.img"), Path.Combine(firmware, "media-stream.elf"),
        })
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi)!;
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return new LabRun(output, p.ExitCode, stdout + stderr.Result);
    }

    private sealed record LabRun(string OutputDir, int ExitCode, string Output);
}

/// <summary>One scenario's console and log lines with the lab uptime at which each arrived.</summary>
public sealed class ScenarioLog(string name, string[] lines)
{
    public string Name { get; } = name;

    public IEnumerable<(double Seconds, string Text)> Lines
    {
        get
        {
            foreach (string line in lines)
            {
                int space = line.IndexOf(' ');
                if (space > 0 && double.TryParse(line[..space], NumberStyles.Float, CultureInfo.InvariantCulture, out double s))
                {
                    yield return (s, line[(space + 1)..]);
                }
            }
        }
    }

    public double Start => Lines.First().Seconds;

    /// <summary>The command's exit code.</summary>
    public int ExitCode => Lines.Where(l => l.Text.StartsWith("EXIT ", StringComparison.Ordinal))
        .Select(l => int.Parse(l.Text[5..], CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Last();

    /// <summary>Seconds from the command's start to the first line containing <paramref name="marker"/>.</summary>
    public double SecondsTo(string marker)
    {
        foreach ((double s, string text) in Lines)
        {
            if (text.Contains(marker, StringComparison.Ordinal))
            {
                return s - Start;
            }
        }
        throw new Xunit.Sdk.XunitException($"{Name}: no line with \"{marker}\"\n{this}");
    }

    public bool Contains(string text) => Lines.Any(l => l.Text.Contains(text, StringComparison.Ordinal));

    public override string ToString() => string.Join('\n', lines.TakeLast(60));
}

/// <summary>A test that needs the aarch64 lab: skipped, saying why, where it cannot run outside CI.</summary>
public sealed class Arm64LabFactAttribute : FactAttribute
{
    public Arm64LabFactAttribute()
    {
        if (Arm64Lab.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
