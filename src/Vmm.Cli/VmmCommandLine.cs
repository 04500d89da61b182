namespace Vmm.Cli;

/// <summary>Parses the command line and runs the chosen command.</summary>
internal static class VmmCommandLine
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("vmm: not yet wired (scaffold)");
        return 2;
    }
}
