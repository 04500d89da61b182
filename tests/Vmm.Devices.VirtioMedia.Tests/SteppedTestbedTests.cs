using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The stepped testbed (what the media fuzzer drives): the device runs on the caller's thread, commands are
/// answered inside SendCommand, and frames appear only when events are pumped.</summary>
public class SteppedTestbedTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static VirtioMediaTestbed NewSteppedBed(bool paced = false) =>
        VirtioMediaTestbed.CreateStepped(new TestPatternOptions { Width = 320, Height = 240, Fps = 2, Paced = paced, SharedMemorySize = 16UL << 20 }, 16UL << 20);

    [Fact]
    public void Frames_are_produced_only_when_events_are_pumped_and_match_the_pattern()
    {
        using VirtioMediaTestbed bed = NewSteppedBed();
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        Assert.Equal(3, s.RequestBuffers(3, V4l2Memory.Mmap));
        s.QueueAllBuffers();
        s.StreamOn();
        // Nothing runs behind the caller's back: all three buffers are still unwritten.
        for (int i = 0; i < 3; i++)
        {
            Assert.True(s.MappedPlane(i, 0).IndexOfAnyExcept((byte)0) < 0, $"buffer {i} was written before a pump");
        }
        Assert.Equal(1, bed.PumpEvents()); // one frame per streaming session per pump (unpaced: always due)
        for (uint i = 0; i < 5; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
            Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, i, TestPatternControls.Default), frame.Checksum());
        }
        s.StreamOff();
    }

    [Fact]
    public void A_paced_stepped_device_produces_the_first_frame_at_once_and_the_next_one_only_when_due()
    {
        using VirtioMediaTestbed bed = NewSteppedBed(paced: true);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        Assert.Equal(1, bed.PumpEvents());
        // The next frame is due 500 ms later; a pump before then produces nothing (a pump takes microseconds).
        Assert.Equal(0, bed.PumpEvents());
        using TestbedFrame second = Dequeue(s, skip: 1);
        Assert.Equal(1u, second.Sequence);
    }

    private static TestbedFrame Dequeue(TestbedSession s, int skip)
    {
        for (int i = 0; i < skip; i++)
        {
            using TestbedFrame f = s.DequeueFrame(Timeout);
        }
        return s.DequeueFrame(Timeout);
    }

    [Fact]
    public void A_static_image_is_rendered_once_per_buffer_and_then_delivered_unchanged()
    {
        Assert.True(TestPatternOptions.TryParse("test-pattern,size=320x240,pattern=static,shm=16M", out TestPatternOptions? options, out string? error), error);
        Assert.True(options.StaticImage);
        using VirtioMediaTestbed bed = VirtioMediaTestbed.CreateStepped(options with { Paced = false }, 16UL << 20);
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueAllBuffers();
        s.StreamOn();
        uint[] expected = [0, 1, 0, 1, 0]; // buffers 0 and 1 alternate and keep the image of their first fill
        for (uint i = 0; i < expected.Length; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout);
            Assert.Equal(i, frame.Sequence);
            Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, expected[i], TestPatternControls.Default), frame.Checksum());
        }
    }

    [Theory]
    [InlineData("test-pattern,pattern=moving", null)]
    [InlineData("test-pattern,pattern=still", "pattern 'still' must be 'moving' or 'static'")]
    public void The_pattern_key_takes_moving_or_static(string spec, string? expectedError)
    {
        bool ok = TestPatternOptions.TryParse(spec, out TestPatternOptions? options, out string? error);
        Assert.Equal(expectedError is null, ok);
        Assert.Equal(expectedError, error);
        Assert.False(options?.StaticImage ?? false);
    }

    [Fact]
    public void A_threaded_device_refuses_to_be_stepped()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 160, Height = 120, SharedMemorySize = 1UL << 20 }, 8UL << 20);
        Assert.Throws<InvalidOperationException>(() => bed.Device.ProcessQueues());
        Assert.Throws<InvalidOperationException>(() => bed.Device.ProduceFrames(0));
    }
}
