namespace Vmm.Fuzz.Targets;

/// <summary>A harness: decodes one fuzzer input and drives guest-facing code with it. It returns normally for every
/// input the code handles as designed (including rejected input); any other exception is a finding.</summary>
public delegate void FuzzTarget(ReadOnlySpan<byte> input);

/// <summary>The harnesses by name: <c>queue</c>, <c>pci</c>, <c>media</c>, <c>boot</c>.</summary>
public static class FuzzTargets
{
    public static IReadOnlyList<string> Names { get; } = ["queue", "pci", "media", "boot"];

    public static bool TryGet(string name, out FuzzTarget target)
    {
        FuzzTarget? found = name switch
        {
            "queue" => QueueTarget.Run,
            "pci" => PciTarget.Run,
            "media" => MediaTarget.Run,
            "boot" => BootTarget.Run,
            _ => null,
        };
        target = found ?? (static _ => { });
        return found is not null;
    }
}

/// <summary>An invariant the harness checks failed: the code under test misbehaved without throwing.</summary>
public sealed class FuzzInvariantException(string message) : Exception(message);

/// <summary>With VMM_FUZZ_TRACE=1, harnesses print what each operation got back (for checking that a seed reaches
/// the state it was written for, and for reading a crash input). Off while fuzzing.</summary>
internal static class FuzzTrace
{
    public static readonly bool Enabled = Environment.GetEnvironmentVariable("VMM_FUZZ_TRACE") == "1";

    public static void Write(string line)
    {
        if (Enabled)
        {
            Console.Out.WriteLine(line);
        }
    }
}
