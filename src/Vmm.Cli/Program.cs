namespace Vmm.Cli;

public static class Program
{
    public static int Main(string[] args) => VmmCommandLine.Run(args);
}
