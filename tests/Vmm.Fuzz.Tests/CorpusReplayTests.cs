using Vmm.Fuzz.Targets;

namespace Vmm.Fuzz.Tests;

/// <summary>Every committed seed (fuzz/corpus/TARGET/) and every saved finding (fuzz/regressions/TARGET/) runs
/// through its uninstrumented harness and must complete: the harness's own checks are the assertions.</summary>
public sealed class CorpusReplayTests
{
    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (string folder in new[] { "corpus", "regressions" })
        {
            foreach (string target in FuzzTargets.Names)
            {
                string dir = Path.Combine(RepoPaths.Fuzz, folder, target);
                if (!Directory.Exists(dir))
                {
                    continue;
                }
                string[] files = Directory.GetFiles(dir);
                Array.Sort(files, StringComparer.Ordinal);
                foreach (string file in files)
                {
                    data.Add(target, Path.GetRelativePath(RepoPaths.Fuzz, file));
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void SavedInput_Completes(string target, string relativePath)
    {
        Assert.True(FuzzTargets.TryGet(target, out FuzzTarget run));
        run(File.ReadAllBytes(Path.Combine(RepoPaths.Fuzz, relativePath)));
    }

    [Fact]
    public void EveryTarget_HasSeeds()
    {
        foreach (string target in FuzzTargets.Names)
        {
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(RepoPaths.Fuzz, "corpus", target)));
        }
    }

    [Fact]
    public void EmptyAndShortInputs_Complete()
    {
        foreach (string target in FuzzTargets.Names)
        {
            Assert.True(FuzzTargets.TryGet(target, out FuzzTarget run));
            run([]);
            for (int b = 0; b < 256; b += 17)
            {
                run([(byte)b]);
                run([(byte)b, (byte)~b, 0xFF, 0, 0x80]);
            }
        }
    }
}

internal static class RepoPaths
{
    /// <summary>The repository's fuzz/ folder, found upwards from the test binaries.</summary>
    public static string Fuzz { get; } = Find();

    private static string Find()
    {
        for (string? dir = AppContext.BaseDirectory; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(Path.Combine(dir, "Vmm.sln")))
            {
                return Path.Combine(dir, "fuzz");
            }
        }
        throw new DirectoryNotFoundException("Vmm.sln not found above " + AppContext.BaseDirectory);
    }
}
