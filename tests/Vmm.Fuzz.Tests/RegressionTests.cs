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

    /// <summary>boot: a config file whose string key holds a list or an object ("rng": ["x"], or a key with a colon,
    /// which the configuration reader splits into a section) made the binder throw InvalidOperationException out of
    /// ConfigFile.Load (fuzz/regressions/boot/config-list-for-a-string-key, config-key-with-a-colon). A bad config
    /// file must be one line naming the key.</summary>
    [Theory]
    [InlineData("{\"kernel\": \"k\", \"rng\": [\"x\"]}", "\"rng\"")]
    [InlineData("{\"kernel\": \"k\", \"boot\": {\"entry\": \"pvh\"}}", "\"boot\"")]
    [InlineData("{\"kernel: x\": \"k\"}", "\"kernel\"")]
    [InlineData("{\"kernel\": \"k\", \"media\": [{\"spec\": \"test-pattern\"}]}", "\"media\"")]
    public void ConfigFileWithAListOrObjectForAValue_IsAUsageError(string json, string key)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"vmm-fuzz-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "k"), "");
            string path = Path.Combine(dir, "vm.json");
            File.WriteAllText(path, json);
            UsageException e = Assert.Throws<UsageException>(() => VmmCommandLine.ParseRunConfig("--config", path));
            Assert.Contains(key, e.Message);

            var stderr = new StringWriter();
            Assert.Equal(VmmCommandLine.ExitUsage, VmmCommandLine.Run(["run", "--config", path], new StringWriter(), stderr));
            Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
