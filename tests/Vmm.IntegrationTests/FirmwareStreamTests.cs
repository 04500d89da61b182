using System.Text.RegularExpressions;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// The fast end-to-end test in a real VM with no Linux: the firmware guest (firmware/media-stream.elf) finds the
/// virtio-media device over PCI, streams MMAP frames out of the shared-memory BAR from ring 3, and prints checksums
/// that <c>vmm demo</c> checks against the test-pattern generator — every frame, through the combined value.
/// </summary>
[Collection(VmCollection.Name)]
public sealed partial class FirmwareStreamTests(ITestOutputHelper output)
{
    private VmmRun Demo(params string[] args)
    {
        VmmRun run = VmmProcess.Run(["demo", "--firmware", TestEnvironment.RequireFirmware("media-stream.elf"), .. args],
            TimeSpan.FromSeconds(120));
        output.WriteLine(run.ToString());
        return run;
    }

    [VmFact(firmware: true)]
    [Trait("Category", "Media")]
    public void Streams_300_frames_at_640x480_with_every_checksum_matching_the_generator()
    {
        VmmRun run = Demo("--width", "640", "--height", "480", "--format", "YUYV", "--fps", "60", "--frames", "300");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("RESULT frames=300 width=640 height=480 format=YUYV", run.Stdout);
        Assert.Contains("demo: frames checked against the generator: 300, mismatches: 0", run.Stdout);
        Assert.Contains("demo: OK", run.Stdout);
        // Paced at 60 fps by the device: never faster. The lab's emulated CPU cannot keep up, so there only the cap holds.
        Assert.InRange(GuestFps(run), TestEnvironment.InLab ? 1 : 50, 70);
    }

    [VmFact(firmware: true)]
    [Trait("Category", "Media")]
    public void Streams_60_frames_at_3840x2160_with_every_checksum_matching_the_generator()
    {
        VmmRun run = Demo("--width", "3840", "--height", "2160", "--format", "NV12", "--fps", "60", "--frames", "60");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("RESULT frames=60 width=3840 height=2160 format=NV12", run.Stdout);
        Assert.Contains("demo: frames checked against the generator: 60, mismatches: 0", run.Stdout);
    }

    [VmFact(firmware: true)]
    public void Every_single_planar_format_streams_with_matching_checksums_and_dumps_frames_people_can_look_at()
    {
        string dumps = Directory.CreateTempSubdirectory("vmm-demo-frames-").FullName;
        try
        {
            foreach (string format in new[] { "YUYV", "NV12", "YU12", "RGB3", "BGR3" })
            {
                string dir = Path.Combine(dumps, format); // does not exist yet: the demo creates it
                VmmRun run = Demo("--width", "320", "--height", "240", "--format", format, "--fps", "120", "--frames", "20",
                    "--dump-frames", dir, "--dump-every", "10");
                Assert.True(run.ExitCode == 0, $"{format}: {run}");
                Assert.Contains("demo: frames checked against the generator: 20, mismatches: 0", run.Stdout);
                Assert.Contains($"demo: frames written as PNG: 2 in {dir} (frame-000000-320x240-{format}.png … frame-000010-320x240-{format}.png)", run.Stdout);
                Assert.Equal([$"frame-000000-320x240-{format}.png", $"frame-000010-320x240-{format}.png"],
                    Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
                foreach (uint sequence in new uint[] { 0, 10 })
                {
                    AssertIsPatternFrame(Path.Combine(dir, $"frame-{sequence:D6}-320x240-{format}.png"), 320, 240, sequence);
                }
            }
        }
        finally
        {
            Directory.Delete(dumps, recursive: true);
        }
    }

    /// <summary>The PNG decodes to the frame's size, and the centre of each bar on a row through the frame counter
    /// and one below it has the generator's colour (±2 for the YUV formats' round trip): the received frame, whole.</summary>
    private static void AssertIsPatternFrame(string path, int width, int height, uint sequence)
    {
        using SkiaSharp.SKBitmap png = SkiaSharp.SKBitmap.Decode(path) ?? throw new InvalidDataException($"{path} does not decode");
        Assert.Equal((width, height), (png.Width, png.Height));
        foreach (int y in new[] { 2, height - 2 })
        {
            for (int i = 0; i < 32; i++)
            {
                int x = (2 * i + 1) * width / 64; // 32 points across the frame: every bar and counter cell sampled
                SkiaSharp.SKColor actual = png.GetPixel(x, y);
                (byte r, byte g, byte b) = TestPatternImage.RgbAt(width, height, sequence, TestPatternControls.Default, x, y);
                Assert.True(Math.Abs(actual.Red - r) <= 2 && Math.Abs(actual.Green - g) <= 2 && Math.Abs(actual.Blue - b) <= 2,
                    $"{Path.GetFileName(path)}: pixel ({x}, {y}) is {actual}, the generator made ({r}, {g}, {b})");
            }
        }
    }

    private static double GuestFps(VmmRun run)
    {
        Match m = FpsPattern().Match(run.Stdout);
        Assert.True(m.Success, "no fps in the demo output");
        return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"([0-9.]+) fps measured in the guest")]
    private static partial Regex FpsPattern();
}
