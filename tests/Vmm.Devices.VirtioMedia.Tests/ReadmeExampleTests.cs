using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The embedded-testbed example of README.md, kept compiling and passing here.</summary>
public sealed class ReadmeExampleTests
{
    [Fact]
    public void Readme_testbed_example_streams_100_checked_frames()
    {
        int good = 0;
        // ---- README example (keep in sync) ----
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 1280, Height = 720, Fps = 60 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12, 1280, 720);
        s.RequestBuffers(4, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        for (int i = 0; i < 100; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(TimeSpan.FromSeconds(1));
            ReadOnlySpan<byte> luma = frame.Plane(0);
            bool ok = frame.Checksum() == TestPatternImage.ExpectedChecksum(FourCc.Nv12, 1280, 720, frame.Sequence, TestPatternControls.Default);
            // ---- end of the README example ----
            Assert.Equal(1280 * 720 * 3 / 2, luma.Length);
            good += ok ? 1 : 0;
        }
        s.StreamOff();
        Assert.Equal(100, good);
    }

    [Fact]
    public void Raw_capture_buffers_carry_a_monotonic_timestamp_and_no_compressed_frame_flags()
    {
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 320, Height = 240, Fps = 120 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        using TestbedFrame frame = s.DequeueFrame(TimeSpan.FromSeconds(1));
        uint flags = frame.Event.Buffer.Flags;
        Assert.Equal(V4l2Const.BufFlagTimestampMonotonic, flags & V4l2Const.BufFlagTimestampMonotonic);
        Assert.Equal(0u, flags & (V4l2Const.BufFlagKeyframe | 0x10 | 0x20)); // KEYFRAME, PFRAME, BFRAME
    }
}
