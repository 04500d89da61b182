using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;

namespace Vmm.Cli;

/// <summary>Composes a VM from a validated <see cref="VmConfig"/> and runs it to completion.</summary>
internal static class VmLauncher
{
    public static int Run(VmConfig config, Log log, TextWriter console)
    {
        throw new VmStartException("the VM composer is not wired yet");
    }
}
