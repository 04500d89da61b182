using Vmm.Cli;
using Vmm.Cli.Configuration;

namespace Vmm.Fuzz.Tests;

/// <summary>One test per defect the fuzzers found: the specific correct behaviour, which failed before the fix.
/// The inputs themselves are in fuzz/regressions/TARGET/ and replay through <see cref="CorpusReplayTests"/>.</summary>
public sealed class RegressionTests
{
    /// <summary>boot: <c>@/</c> among the flags made System.CommandLine read the directory "/" as a response file;
    /// the UnauthorizedAccessException escaped the parser (fuzz/regressions/boot/cli-response-file-is-a-directory).
    /// Bad flags must be one line and exit code 2.</summary>
    [Fact]
    public void ResponseFileThatIsADirectory_IsAUsageError()
    {
        UsageException e = Assert.Throws<UsageException>(() => VmmCommandLine.ParseRunConfig("--kernel", "k", "@/"));
        Assert.Contains("response file", e.Message);

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(VmmCommandLine.ExitUsage, VmmCommandLine.Run(["run", "@/"], stdout, stderr));
        string[] lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("vmm: error: cannot read a response file", lines[0]);
    }

    /// <summary>boot: a config file giving a list where a single value belongs (<c>"rng": ["test-pattern,…"]</c>)
    /// made the configuration binder throw InvalidOperationException out of <c>vmm run --config</c>
    /// (fuzz/regressions/boot/config-file-list-for-a-scalar-key). It must be one line naming the key.</summary>
    [Fact]
    public void ConfigFileListForAScalarKey_IsAUsageErrorNamingTheKey()
    {
        string config = Path.Combine(Path.GetTempPath(), $"vmm-fuzz-regression-{Environment.ProcessId}.json");
        File.WriteAllText(config, """{ "kernel": "k", "mem": 64, "rng": ["test-pattern,width=640"] }""");
        try
        {
            UsageException e = Assert.Throws<UsageException>(() => VmmCommandLine.ParseRunConfig("--config", config));
            Assert.EndsWith("\"rng\" must be a single value, not a list or an object", e.Message);
        }
        finally
        {
            File.Delete(config);
        }
    }
}
