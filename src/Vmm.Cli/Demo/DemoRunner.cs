using System.Diagnostics;
using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Kvm.Vcpus;

namespace Vmm.Cli.Demo;

/// <summary>Settings of <c>vmm demo</c>.</summary>
internal sealed record DemoOptions
{
    public required string FirmwarePath { get; init; }
    public int Width { get; init; } = 1920;
    public int Height { get; init; } = 1080;
    public string Format { get; init; } = "NV12";
    public int Fps { get; init; } = 60;
    public int Frames { get; init; } = 300;
    /// <summary>Where to write received frames as PNG (<c>--dump-frames</c>), or null.</summary>
    public string? DumpDirectory { get; init; }
    /// <summary>Frames 0, N, 2N, … are written (<c>--dump-every</c>).</summary>
    public int DumpEvery { get; init; } = 75;
    public LogLevel LogLevel { get; init; } = LogLevel.Warn;
}

/// <summary>
/// <c>vmm demo</c>: boots the streaming firmware (firmware/media-stream.elf, or media-stream-arm64.img on arm64) in a VM with a test-pattern
/// virtio-media camera, lets it stream MMAP frames out of the shared-memory region, and checks the checksums it
/// prints against the generator — an end-to-end run of the whole stack that needs no camera and no Linux. With
/// <c>--dump-frames</c> it also writes some of the frames the guest receives as PNG (<see cref="FrameDumper"/>).
/// </summary>
internal static class DemoRunner
{
    public static int Run(DemoOptions o, Log log, TextWriter stdout)
    {
        if (!File.Exists(o.FirmwarePath))
        {
            throw new UsageException($"firmware payload '{o.FirmwarePath}' does not exist (build it with ./build.sh firmware)");
        }
        string camera = $"test-pattern,width={o.Width},height={o.Height},fps={o.Fps},format={o.Format}";
        if (!TestPatternOptions.TryParse(camera, out TestPatternOptions? pattern, out string? error))
        {
            throw new UsageException(error);
        }
        string? dumpDirectory = o.DumpDirectory is null ? null : FrameDumper.PrepareDirectory(o.DumpDirectory);
        var config = new VmConfig
        {
            KernelPath = Path.GetFullPath(o.FirmwarePath),
            Cmdline = $"width={o.Width} height={o.Height} format={o.Format} frames={o.Frames} print_first=2 print_every={Math.Max(1, o.Frames / 4)}",
            MemMiB = 64,
            Media = [camera],
            LogLevel = o.LogLevel,
        };
        stdout.WriteLine($"demo: streaming {o.Frames} frames of {o.Width}x{o.Height} {o.Format} at {o.Fps} fps from the test-pattern camera through the firmware guest");
        stdout.Flush();
        var report = new StreamReport();
        using FrameDumper? dumper = dumpDirectory is null ? null
            : new FrameDumper(dumpDirectory, o.DumpEvery, o.Frames, FrameLayout.ForTestPattern(pattern.Format, o.Width, o.Height));
        var wall = Stopwatch.StartNew();
        VmRunResult result = VmLauncher.RunToEnd(config, log, report.Observe, dumper);
        wall.Stop();
        dumper?.Finish();
        (int checkedFrames, int mismatches) = report.HasResult ? report.Verify(pattern.Format, TestPatternControls.Default) : (0, 0);
        stdout.WriteLine(
            $"demo: {report.ResultFrames} frames of {report.Width}x{report.Height} {report.Format} received, " +
            $"{report.GuestFps:F2} fps measured in the guest, VM wall time {wall.Elapsed.TotalSeconds:F1} s");
        stdout.WriteLine($"demo: frames checked against the generator: {checkedFrames}, mismatches: {mismatches}" +
                         (report.Gaps != 0 ? $" ({report.Gaps} dropped frames: only the printed ones were checked)" : ""));
        if (dumper is not null)
        {
            IReadOnlyList<string> written = dumper.Written;
            stdout.WriteLine(written.Count == 0
                ? $"demo: frames written as PNG: 0 in {dumpDirectory}"
                : $"demo: frames written as PNG: {written.Count} in {dumpDirectory} ({Path.GetFileName(written[0])}" +
                  (written.Count > 1 ? $" … {Path.GetFileName(written[^1])})" : ")"));
            if (dumper.Error is { } dumpError)
            {
                stdout.WriteLine($"demo: frames not written: {dumpError}");
            }
        }
        bool streamed = result.ExitCode == 0 && report.HasResult && mismatches == 0 && checkedFrames > 0;
        bool ok = streamed && dumper?.Error is null;
        stdout.WriteLine(ok ? "demo: OK" : streamed ? "demo: FAILED (frames could not be written)"
            : $"demo: FAILED (guest exit code {result.ExitCode}: {result.Reason})");
        return ok ? 0 : 1;
    }
}
