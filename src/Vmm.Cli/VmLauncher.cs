using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;
using Vmm.Cli.Platforms;
using Vmm.Core.Boot;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Kvm;
using Vmm.Kvm.Vcpus;

namespace Vmm.Cli;

/// <summary>
/// Runs a VM described by a validated <see cref="VmConfig"/> to completion and reports how it stopped; also holds the
/// small pieces of policy <see cref="Machine"/> composes with (inputs, command line, boot options, guest RAM).
/// </summary>
internal static class VmLauncher
{
    public static int Run(VmConfig config, Log log)
    {
        log.Info($"vmm starting: {config.MemMiB} MiB, {config.Cpus} vCPU(s), kernel {config.KernelPath}");
        return RunToEnd(config, log).ExitCode;
    }

    /// <summary>Builds the machine, runs it, and logs the stop (with the crash report on stderr for a fatal one).</summary>
    /// <param name="consoleObserver">Also receives each guest console line (see <see cref="Machine.Build"/>).</param>
    /// <param name="frameObserver">Sees every frame the media devices complete (see <see cref="Machine.Build"/>).</param>
    public static VmRunResult RunToEnd(VmConfig config, Log log, Action<string>? consoleObserver = null,
        Vmm.Devices.VirtioMedia.Frames.IFrameObserver? frameObserver = null)
    {
        VmRunResult result;
        using (var machine = Machine.Build(config, log, consoleObserver, frameObserver))
        {
            result = machine.Run();
        }
        if (result.Kind == VmStopKind.Fatal)
        {
            log.Error($"VM stopped: {result.Reason}");
            if (result.Diagnostics is { } report)
            {
                Console.Error.WriteLine(report.ToString());
            }
        }
        else
        {
            log.Info($"VM stopped: {result.Reason} (exit code {result.ExitCode})");
        }
        return result;
    }

    /// <summary>Reads a whole input file; failures become one-line start errors.</summary>
    internal static byte[] ReadInput(string path, string what)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new VmStartException($"cannot read {what} '{path}': {e.Message}");
        }
    }

    /// <summary>The kernel command line: the user part (the platform's default or --cmdline) plus what this VMM
    /// needs.</summary>
    internal static KernelCmdline BuildCmdline(VmConfig config, HostProfile profile, MachinePlatform platform)
    {
        // On a PVM host every console character is ~0.1 ms of emulated kernel code: the default line is quiet there.
        string defaults = platform.DefaultUserParameters + (profile.IsPvm ? " quiet" : "");
        KernelCmdline cmdline = KernelCmdline.Create(config.Cmdline ?? defaults);
        string consoleName = config.Console == ConsoleKind.Virtio ? "hvc0" : platform.SerialConsoleName;
        if (config.Cmdline is not null)
        {
            // A user line replaces the default user part; keep what the VMM's devices rely on unless the user
            // chose otherwise: the console device and the platform's reset and panic behaviour.
            if (!HasParameter(config.Cmdline, "console"))
            {
                cmdline.AddVmmParameter("console", consoleName);
            }
            foreach ((string key, string value) in platform.ImpliedParameters)
            {
                if (!HasParameter(config.Cmdline, key))
                {
                    cmdline.AddVmmParameter(key, value);
                }
            }
        }
        else if (config.Console == ConsoleKind.Virtio)
        {
            cmdline.AddVmmParameter("console", "hvc0");
        }
        if (profile.GuestCommandLineAdditions.Length > 0)
        {
            cmdline.AddVmmParameters(profile.GuestCommandLineAdditions);
        }
        return cmdline;
    }

    private static bool HasParameter(string line, string key)
    {
        foreach (string token in line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (token == "--")
            {
                return false;
            }
            if (token.StartsWith(key + "=", StringComparison.Ordinal) || token == key)
            {
                return true;
            }
        }
        return false;
    }

    internal static BootOptions BootOptionsFor(BootSelection selection) => selection switch
    {
        BootSelection.Pvh => new BootOptions { Entry = BootEntry.Pvh },
        BootSelection.Linux64 => new BootOptions { Entry = BootEntry.Linux64 },
        BootSelection.BzImage => new BootOptions { InGuestDecompression = true },
        _ => new BootOptions(),
    };

    internal static GuestMemory CreateGuestMemory(int memMiB, MachinePlatform platform)
    {
        ulong bytes = (ulong)memMiB << 20;
        (ulong Start, ulong Size)[] regions = platform.RamRegions(bytes);
        var layout = new (GuestAddress, ulong)[regions.Length];
        for (int i = 0; i < regions.Length; i++)
        {
            layout[i] = (new GuestAddress(regions[i].Start), regions[i].Size);
        }
        try
        {
            return GuestMemory.CreateAnonymous(layout);
        }
        catch (Vmm.Core.Interop.ErrnoException e)
        {
            throw new VmStartException($"cannot allocate {memMiB} MiB of guest memory: {e.Message}");
        }
    }
}
