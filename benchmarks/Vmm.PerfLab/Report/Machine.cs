using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vmm.PerfLab.Report;

internal static class Machine
{
    public static MachineFacts Describe() => new(
        Cpu: CpuModel(),
        Cores: Environment.ProcessorCount,
        Kernel: File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "unknown",
        HostKind: HostKind(),
        Commit: Commit(),
        Runtime: RuntimeInformation.FrameworkDescription,
        Vectors: Vector128.IsHardwareAccelerated,
        Date: DateTimeOffset.UtcNow);

    /// <summary>lab (inside lab/run.sh's L1), native-pvm, native-vmx, native-svm, or no-kvm.</summary>
    public static string HostKind()
    {
        if (Environment.GetEnvironmentVariable("VMM_LAB") == "1")
        {
            return "lab";
        }
        if (!File.Exists("/dev/kvm"))
        {
            return "no-kvm";
        }
        if (Directory.Exists("/sys/module/kvm_pvm"))
        {
            return "native-pvm";
        }
        string flags = CpuInfoField("flags") ?? "";
        return $" {flags} ".Contains(" vmx ", StringComparison.Ordinal) ? "native-vmx"
            : $" {flags} ".Contains(" svm ", StringComparison.Ordinal) ? "native-svm" : "native";
    }

    private static string CpuModel() => CpuInfoField("model name") ?? RuntimeInformation.ProcessArchitecture.ToString();

    private static string? CpuInfoField(string name)
    {
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == name)
            {
                return line[(colon + 1)..].Trim();
            }
        }
        return null;
    }

    private static string Commit()
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse --short=12 HEAD")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = AppContext.BaseDirectory,
            });
            string output = git!.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 ? output : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown"; // no git
        }
    }
}
