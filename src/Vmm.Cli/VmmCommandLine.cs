using System.CommandLine;
using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;

namespace Vmm.Cli;

/// <summary>
/// The <c>vmm</c> command line. Flags are parsed as text and validated by <see cref="VmConfig"/>, so every bad value
/// gets the same kind of one-line message; parse errors (unknown options) get one line too.
/// </summary>
internal static class VmmCommandLine
{
    public const int ExitUsage = 2;
    public const int ExitFailure = 1;

    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var o = new RunOptions();
        Command run = o.BuildCommand();
        var d = new DemoCommandOptions();
        Command demo = d.BuildCommand();
        var root = new RootCommand(
            "vmm — a KVM virtual machine monitor for virtio-media (V4L2 cameras and decoders over virtio).\n" +
            "Boots an x86_64 Linux kernel (vmlinux, bzImage) or a PVH ELF payload with a serial console on stdio.")
        {
            run,
            demo,
        };
        ParseResult parsed;
        try
        {
            parsed = ParseArguments(root, args);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"vmm: error: {e.Message}");
            return ExitUsage;
        }
        if (parsed.Errors.Count > 0)
        {
            // The parser reports "Required command was not provided" next to the real problem; show the real one.
            string? message = null;
            foreach (System.CommandLine.Parsing.ParseError error in parsed.Errors)
            {
                if (message is null || error.Message.StartsWith("Unrecognized", StringComparison.Ordinal))
                {
                    message = error.Message;
                }
            }
            if (args.Length == 0 || message!.StartsWith("Required command", StringComparison.Ordinal))
            {
                stderr.WriteLine("vmm: error: no command given (try 'vmm run --kernel FILE', or 'vmm --help')");
                return ExitUsage;
            }
            stderr.WriteLine($"vmm: error: {message} (see 'vmm {(parsed.CommandResult.Command == run ? "run " : "")}--help')");
            return ExitUsage;
        }
        run.SetAction(pr => RunVm(o, pr, stderr));
        demo.SetAction(pr => RunDemo(d, pr, stdout, stderr));
        return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
    }

    /// <summary>Parses <c>vmm run</c> arguments (without the word "run") into a validated config; for tests and tools.</summary>
    internal static VmConfig ParseRunConfig(params string[] runArgs)
    {
        var o = new RunOptions();
        Command run = o.BuildCommand();
        ParseResult parsed = ParseArguments(run, runArgs);
        if (parsed.Errors.Count > 0)
        {
            throw new UsageException(parsed.Errors[0].Message);
        }
        return o.ToConfig(parsed);
    }

    /// <summary>Parses <c>vmm demo</c> arguments (without the word "demo") into its options; for tests.</summary>
    internal static Demo.DemoOptions ParseDemoOptions(params string[] demoArgs)
    {
        var d = new DemoCommandOptions();
        Command demo = d.BuildCommand();
        ParseResult parsed = ParseArguments(demo, demoArgs);
        if (parsed.Errors.Count > 0)
        {
            throw new UsageException(parsed.Errors[0].Message);
        }
        return d.ToOptions(parsed);
    }

    /// <summary>Parses <paramref name="args"/>, turning a response file (<c>@FILE</c>) that cannot be read into a
    /// usage error. The parser reports an unreadable one as a parse error only for IOException; a directory or a file
    /// without read permission throws UnauthorizedAccessException out of Parse.</summary>
    private static ParseResult ParseArguments(Command command, IReadOnlyList<string> args)
    {
        try
        {
            return command.Parse(args);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new UsageException($"cannot read a response file: {e.Message}");
        }
    }

    private static int RunVm(RunOptions o, ParseResult pr, TextWriter stderr) => Guarded(stderr, () =>
    {
        VmConfig config = o.ToConfig(pr);
        return VmLauncher.Run(config, new Log(config.LogLevel, stderr));
    });

    private static int RunDemo(DemoCommandOptions d, ParseResult pr, TextWriter stdout, TextWriter stderr) => Guarded(stderr, () =>
    {
        Demo.DemoOptions options = d.ToOptions(pr);
        return Demo.DemoRunner.Run(options, new Log(options.LogLevel, stderr), stdout);
    });

    /// <summary>Runs a command; bad input and start failures become one line on stderr and their exit codes.</summary>
    private static int Guarded(TextWriter stderr, Func<int> command)
    {
        try
        {
            return command();
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"vmm: error: {e.Message}");
            return ExitUsage;
        }
        catch (VmStartException e)
        {
            stderr.WriteLine($"vmm: error: {e.Message}");
            return ExitFailure;
        }
    }

    /// <summary>The options of <c>vmm demo</c>.</summary>
    internal sealed class DemoCommandOptions
    {
        public readonly Option<string> Firmware = new("--firmware")
        { Description = "Streaming guest payload [default: firmware/out/media-stream.elf, on arm64 media-stream-arm64.img]", HelpName = "FILE" };
        public readonly Option<string> Width = new("--width") { Description = "Frame width [default: 1920]", HelpName = "W" };
        public readonly Option<string> Height = new("--height") { Description = "Frame height [default: 1080]", HelpName = "H" };
        public readonly Option<string> Format = new("--format") { Description = "Pixel format: YUYV, NV12, YU12, RGB3, BGR3 [default: NV12]", HelpName = "FOURCC" };
        public readonly Option<string> Fps = new("--fps") { Description = "Camera frame rate, 1-120 [default: 60]", HelpName = "N" };
        public readonly Option<string> Frames = new("--frames") { Description = "Frames to stream [default: 300]", HelpName = "N" };
        public readonly Option<string> LogLevel = new("--log-level") { Description = "VMM log level [default: warn]", HelpName = "LEVEL" };
        public readonly Option<string> DumpFrames = new("--dump-frames")
        { Description = "Write received frames as PNG to DIR/frame-SEQ-WxH-FOURCC.png (DIR is created)", HelpName = "DIR" };
        public readonly Option<string> DumpEvery = new("--dump-every")
        { Description = "With --dump-frames: write frames 0, N, 2N, ... [default: a quarter of --frames, so 4 files]", HelpName = "N" };

        public Command BuildCommand() => new("demo",
            "Stream from the built-in test-pattern camera through a firmware guest and check every frame (no camera, no Linux needed)")
        {
            Firmware, Width, Height, Format, Fps, Frames, LogLevel, DumpFrames, DumpEvery,
        };

        public Demo.DemoOptions ToOptions(ParseResult pr)
        {
            int frames = VmConfig.ParseInt(pr.GetValue(Frames), "--frames", "frames", 300, 1, 1_000_000);
            string? dumpDirectory = pr.GetValue(DumpFrames);
            string? dumpEvery = pr.GetValue(DumpEvery);
            if (dumpEvery is not null && dumpDirectory is null)
            {
                throw new UsageException("--dump-every: needs --dump-frames DIR (where to write the frames)");
            }
            return new Demo.DemoOptions
            {
                FirmwarePath = pr.GetValue(Firmware) ?? Path.Combine("firmware", "out",
                    System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64
                        ? "media-stream-arm64.img" : "media-stream.elf"),
                Width = VmConfig.ParseInt(pr.GetValue(Width), "--width", "pixels", 1920, 16, 8192),
                Height = VmConfig.ParseInt(pr.GetValue(Height), "--height", "pixels", 1080, 16, 8192),
                Format = pr.GetValue(Format) ?? "NV12",
                Fps = VmConfig.ParseInt(pr.GetValue(Fps), "--fps", "frames per second", 60, 1, 120),
                Frames = frames,
                LogLevel = VmConfig.ParseEnum(pr.GetValue(LogLevel), "--log-level", Diagnostics.LogLevel.Warn),
                DumpDirectory = dumpDirectory,
                // Frames 0, ¼, ½ and ¾ of the way through by default: a few pictures, not hundreds of files.
                DumpEvery = VmConfig.ParseInt(dumpEvery, "--dump-every", "frames", Math.Max(1, frames / 4), 1, 1_000_000),
            };
        }
    }

    /// <summary>The options of <c>vmm run</c> and how they map to config keys.</summary>
    internal sealed class RunOptions
    {
        public readonly Option<string> Kernel = new("--kernel", "-k")
        { Description = "Guest kernel: vmlinux ELF, bzImage, or a PVH ELF payload", HelpName = "FILE" };
        public readonly Option<string> Initrd = new("--initrd", "-i") { Description = "Initial ramdisk (cpio)", HelpName = "FILE" };
        public readonly Option<string> Cmdline = new("--cmdline", "--append", "-p")
        { Description = "Kernel command line, replacing the default user part (console and host settings are kept)", HelpName = "TEXT" };
        public readonly Option<string> Mem = new("--mem", "-m")
        { Description = $"Guest memory in MiB [default: {VmConfig.DefaultMemMiB}]", HelpName = "MiB" };
        public readonly Option<string> Cpus = new("--cpus", "--smp", "-c") { Description = "Number of vCPUs [default: 1]", HelpName = "N" };
        public readonly Option<string[]> Media = new("--media")
        {
            Description = "Add a virtio-media device: test-pattern[,width=W,height=H,fps=F,format=FOURCC], jpeg-decoder, or a host /dev/videoN (repeatable)",
            HelpName = "SPEC",
            AllowMultipleArgumentsPerToken = false,
        };
        public readonly Option<string> Rng = new("--rng") { Description = "Add a virtio-rng device [true|false]", HelpName = "BOOL", Arity = ArgumentArity.ZeroOrOne };
        public readonly Option<string> Console = new("--console") { Description = "Guest console device: serial (ttyS0) or virtio (hvc0) [default: serial]", HelpName = "KIND" };
        public readonly Option<string> Boot = new("--boot")
        { Description = "Kernel entry: auto, pvh, linux64, bzimage (in-guest decompression) [default: auto]", HelpName = "METHOD" };
        public readonly Option<string> Config = new("--config") { Description = "JSON config file; flags given on the command line override its keys", HelpName = "FILE" };
        public readonly Option<string> LogLevel = new("--log-level") { Description = "trace, debug, info, warn, error, off [default: info]", HelpName = "LEVEL" };
        public readonly Option<string> HostProfile = new("--host-profile")
        { Description = "auto, pvm (software-KVM work-arounds) or standard (none) [default: auto]", HelpName = "PROFILE" };

        public Command BuildCommand() => new("run", "Boot a VM. The serial console is on stdin/stdout; press Ctrl-A X to quit.")
        {
            Kernel, Initrd, Cmdline, Mem, Cpus, Media, Rng, Console, Boot, Config, LogLevel, HostProfile,
        };

        public VmConfig ToConfig(ParseResult pr)
        {
            string? configPath = pr.GetValue(Config);
            VmSettings s = configPath is null ? new VmSettings() : ConfigFile.Load(configPath);
            Override(pr, Kernel, v => s.Kernel = v);
            Override(pr, Initrd, v => s.Initrd = v);
            Override(pr, Cmdline, v => s.Cmdline = v);
            Override(pr, Mem, v => s.Mem = v);
            Override(pr, Cpus, v => s.Cpus = v);
            Override(pr, Console, v => s.Console = v);
            Override(pr, Boot, v => s.Boot = v);
            Override(pr, LogLevel, v => s.LogLevel = v);
            Override(pr, HostProfile, v => s.HostProfile = v);
            if (pr.GetResult(Rng) is { Implicit: false } rng)
            {
                s.Rng = rng.Tokens.Count == 0 ? "true" : rng.Tokens[0].Value;
            }
            if (pr.GetResult(Media) is { Implicit: false })
            {
                s.Media = [.. pr.GetValue(Media) ?? []];
            }
            // ConfigFile made its paths absolute (relative to the file); flag paths are relative to the working directory.
            return VmConfig.FromSettings(s);
        }

        private static void Override(ParseResult pr, Option<string> option, Action<string> set)
        {
            if (pr.GetResult(option) is { Implicit: false } && pr.GetValue(option) is { } v)
            {
                set(v);
            }
        }
    }
}
