using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Vmm.Devices.VirtioMedia.V4l2;
using Xunit.Abstractions;

namespace Vmm.HostV4l2.Tests;

/// <summary>
/// The whole path in a VM: <c>vmm run --media /dev/videoN</c> with the firmware guest (firmware/media-stream.elf),
/// which finds the device over PCI, maps vivid's MMAP buffers from the shared-memory BAR (host pages installed as KVM
/// slots) and prints the CRC-32C of every frame. The reference is a frame read from the node directly. Needs KVM and
/// vivid: it runs in the lab.
/// </summary>
[Collection(VividCollection.Name)]
public sealed partial class FirmwareGuestTests(ITestOutputHelper output)
{
    private static string RepositoryRoot()
    {
        string dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "Vmm.sln")))
        {
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("repository root not found");
        }
        return dir;
    }

    [VividFact]
    public void The_firmware_guest_streams_vivid_frames_through_mmap_with_every_checksum_matching()
    {
        string node = Vivid.FindCaptureNode()!;
        uint reference;
        uint w, h;
        using (DirectNode direct = DirectNode.Open(node))
        {
            var none = new V4l2Control { Id = HostV4l2ProxyTests.FindControl(direct, "OSD Text Mode"), Value = 2 };
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.SCtrl, ref none));
            var fs = new V4l2FrmSizeEnum { PixelFormat = FourCc.Yuyv };
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.EnumFrameSizes, ref fs));
            (w, h) = (fs.Width, fs.Height);
            var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
            (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height) = (FourCc.Yuyv, w, h);
            Assert.Equal(0, direct.Rw(V4l2IoctlCode.SFmt, ref f));
            DirectNode.SetFrameRate(direct, 30);
            reference = direct.CaptureOneFrameChecksum();
        }

        const int frames = 60;
        string stdout = RunFirmware(node, $"width={w} height={h} format=YUYV frames={frames} print_first={frames} print_every=1");
        MatchCollection sums = FrameLine().Matches(stdout);
        Assert.Equal(frames, sums.Count);
        foreach (Match m in sums)
        {
            Assert.Equal(reference, uint.Parse(m.Groups["sum"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        Assert.Contains($"RESULT frames={frames} width={w} height={h} format=YUYV", stdout);
        output.WriteLine($"{frames} vivid frames of {w}x{h} YUYV in the guest, every CRC-32C 0x{reference:x8} as read on the host");
    }

    private string RunFirmware(string node, string cmdline)
    {
        string root = RepositoryRoot();
        string firmware = Path.Combine(Environment.GetEnvironmentVariable("VMM_FIRMWARE_DIR") is { Length: > 0 } d ? d : Path.Combine(root, "firmware", "out"), "media-stream.elf");
        string vmm = Path.Combine(root, "src", "Vmm.Cli", "bin", "Release", "net10.0", "vmm.dll");
        Assert.True(File.Exists(firmware), $"{firmware} is missing: ./build.sh firmware builds it");
        Assert.True(File.Exists("/dev/kvm"), "no /dev/kvm: this test runs in the lab, which has KVM and vivid");
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (string a in new[] { vmm, "run", "--kernel", firmware, "--mem", "64", "--media", node, "--cmdline", cmdline })
        {
            psi.ArgumentList.Add(a);
        }
        using Process p = Process.Start(psi)!;
        p.StandardInput.Close();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        Task<string> stdoutRead = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(4)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("vmm did not finish within 4 minutes");
        }
        string stdout = stdoutRead.Result;
        output.WriteLine(stdout.Length > 4000 ? stdout[..2000] + "\n…\n" + stdout[^2000..] : stdout);
        output.WriteLine(stderr.Result);
        Assert.Equal(0, p.ExitCode);
        return stdout;
    }

    [VividFact]
    public void At_the_largest_size_and_highest_rate_the_guest_keeps_the_hosts_rate()
    {
        string node = Vivid.FindCaptureNode()!;
        const int frames = 46;
        uint w, h, reference;
        V4l2Fract interval;
        TimeSpan direct;
        using (DirectNode d = DirectNode.Open(node))
        {
            var none = new V4l2Control { Id = HostV4l2ProxyTests.FindControl(d, "OSD Text Mode"), Value = 2 };
            Assert.Equal(0, d.Rw(V4l2IoctlCode.SCtrl, ref none));
            (w, h, interval) = HostV4l2ProxyTests.LargestAtHighestRate(d);
            var f = new V4l2Format { Type = (uint)V4l2BufferType.VideoCapture };
            (f.Pix.PixelFormat, f.Pix.Width, f.Pix.Height) = (FourCc.Yuyv, w, h);
            Assert.Equal(0, d.Rw(V4l2IoctlCode.SFmt, ref f));
            var parm = new V4l2StreamParm { Type = (uint)V4l2BufferType.VideoCapture, TimePerFrame = interval };
            Assert.Equal(0, d.Rw(V4l2IoctlCode.SParm, ref parm));
            reference = d.Stream(frames, out direct);
        }
        // The guest checksums only the last frame, after its rate is taken: checking a 4K frame in the stream would
        // pace it (an emulated CPU checksums ~30 MB/s here), and the 60-frame test checks every frame's content.
        string stdout = RunFirmware(node, $"width={w} height={h} format=YUYV frames={frames} print_first=0 print_every=0 checksum=printed buffers=6");
        MatchCollection sums = FrameLine().Matches(stdout);
        Assert.Single(sums);
        foreach (Match m in sums)
        {
            Assert.Equal(reference, uint.Parse(m.Groups["sum"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        Match result = ResultLine().Match(stdout);
        Assert.True(result.Success, "no RESULT line");
        double guestFps = double.Parse(result.Groups["fps"].Value, CultureInfo.InvariantCulture);
        double directFps = (frames - 1) / direct.TotalSeconds; // first frame to last, as the guest times it
        output.WriteLine($"{w}x{h} YUYV at interval {interval.Numerator}/{interval.Denominator}, {frames} frames, first to last: " +
                         $"guest {guestFps:F2} fps, vivid read directly {directFps:F2} fps, ratio {guestFps / directFps:F3}");
        // Under an emulated CPU vivid overshoots its nominal rate in bursts (catching up after stalls); the reference
        // is the direct rate, but never more than the nominal one.
        double nominal = interval.Denominator / (double)Math.Max(1u, interval.Numerator);
        double expected = Math.Min(directFps, nominal);
        Assert.True(guestFps >= 0.95 * expected, $"guest {guestFps:F2} fps against {expected:F2} fps (direct {directFps:F2}, nominal {nominal:F2})");
    }

    [GeneratedRegex(@"^RESULT frames=\d+ width=\d+ height=\d+ format=\w+ fps=(?<fps>[0-9.]+)", RegexOptions.Multiline)]
    private static partial Regex ResultLine();

    [GeneratedRegex(@"^FRAME seq=\d+ bytes=\d+ sum=(?<sum>[0-9a-f]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex FrameLine();
}
