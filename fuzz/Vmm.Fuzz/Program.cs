using SharpFuzz;
using Vmm.Fuzz.Targets;

namespace Vmm.Fuzz;

/// <summary>
/// The fuzzing executable: <c>Vmm.Fuzz TARGET</c> runs TARGET under afl-fuzz in SharpFuzz's in-process persistent
/// mode (one .NET process serves every input: start-up and JIT are paid once); <c>--libfuzzer</c> serves
/// libFuzzer instead; <c>--replay FILE|DIR...</c> runs saved inputs once each and prints the stack of any failure.
/// </summary>
internal static class Program
{
    /// <summary>Inputs above this are cut: every harness reads a bounded prefix anyway.</summary>
    private const int MaxInput = 1 << 20;

    private static int Main(string[] args)
    {
        if (args.Length == 0 || !FuzzTargets.TryGet(args[0], out FuzzTarget target))
        {
            Console.Error.WriteLine($"usage: Vmm.Fuzz {string.Join('|', FuzzTargets.Names)} [--libfuzzer | --replay FILE|DIR...]");
            return 2;
        }
        if (args.Length > 1 && args[1] == "--replay")
        {
            return Replay(target, args[2..]);
        }
        if (args.Length > 1 && args[1] == "--libfuzzer")
        {
            Fuzzer.LibFuzzer.Run(span => target(span));
            return 0;
        }
        byte[] buffer = new byte[MaxInput];
        Fuzzer.Run(stream =>
        {
            int length = 0;
            int n;
            while (length < buffer.Length && (n = stream.Read(buffer, length, buffer.Length - length)) > 0)
            {
                length += n;
            }
            target(buffer.AsSpan(0, length));
        });
        return 0;
    }

    private static int Replay(FuzzTarget target, string[] paths)
    {
        int failed = 0, run = 0;
        foreach (string path in paths)
        {
            string[] files = Directory.Exists(path) ? Directory.GetFiles(path) : [path];
            Array.Sort(files, StringComparer.Ordinal);
            foreach (string file in files)
            {
                run++;
                try
                {
                    target(File.ReadAllBytes(file));
                }
                catch (Exception e)
                {
                    failed++;
                    Console.WriteLine($"FAIL {file}\n{e}");
                }
            }
        }
        Console.WriteLine($"replayed {run} inputs, {failed} failed");
        return failed == 0 ? 0 : 1;
    }
}
