using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
using Vmm.Core.Metrics;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>The vmm.media.* instruments read through a <see cref="MeterListener"/>, as dotnet-counters would: exact
/// values for one device (tests in this process run other devices in parallel, so every figure is filtered by the
/// device's tag), and no allocation per frame or command with the listener on.</summary>
public class MediaMetricsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    // Stepped and unpaced, with one buffer queued at a time: each DequeueFrame produces exactly one frame and each
    // re-QBUF is exactly one command, so the figures have exact expected values.
    private static VirtioMediaTestbed NewSteppedBed(bool multiPlanar = false) =>
        VirtioMediaTestbed.CreateStepped(new TestPatternOptions { Width = 320, Height = 240, Paced = false, MultiPlanar = multiPlanar, SharedMemorySize = 16UL << 20 }, 16UL << 20);

    [Theory]
    [InlineData(FourCc.Yuyv, false)]
    [InlineData(FourCc.Nv12M, true)]
    public void Streaming_n_frames_counts_n_frames_their_bytes_no_copy_and_one_latency_per_command(uint fourcc, bool mplane)
    {
        const int frames = 12;
        using var recorder = new MediaMetricsRecorder();
        using VirtioMediaTestbed bed = NewSteppedBed(mplane);
        recorder.Device = bed.Device.Metrics.DeviceName;
        using TestbedSession s = bed.OpenSession();
        V4l2Format f = s.SetFormat(fourcc, 320, 240, mplane);
        long frameSize = mplane ? f.PixMp.PlaneFmt(0).SizeImage + f.PixMp.PlaneFmt(1).SizeImage : f.Pix.SizeImage;
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueBuffer(0);
        s.StreamOn();
        MediaMetricsRecorder.Totals before = recorder.Snapshot();

        for (int i = 0; i < frames; i++)
        {
            using TestbedFrame frame = s.DequeueFrame(Timeout); // disposing it re-QBUFs: one command
        }

        MediaMetricsRecorder.Totals d = recorder.Snapshot() - before;
        Assert.Equal(frames, d.Frames);
        Assert.Equal(frames * frameSize, d.BytesDelivered);
        Assert.Equal(frames, d.DqbufEvents);
        Assert.Equal(frames, d.IoctlCommands);
        Assert.Equal(frames, d.Commands);
        Assert.Equal(frames, d.LatencyMeasurements);
        Assert.True(d.LatencySumMicroseconds > 0);
        // MMAP frames are rendered in place: the observed copy total is there for the device, and 0.
        Assert.Equal(0, recorder.ObserveBytesCopied());
        MediaMetricsRecorder.Totals all = recorder.Snapshot();
        // Every command the device answered (OPEN, S_FMT, REQBUFS, QUERYBUF, MMAP, ... too) has one latency.
        Assert.Equal(all.Commands, all.LatencyMeasurements);
    }

    [Fact]
    public void The_copy_total_is_observed_per_device_until_the_device_is_disposed()
    {
        using var recorder = new MediaMetricsRecorder();
        var metrics = new MediaDeviceMetrics(MediaDeviceMetrics.NextDeviceName());
        recorder.Device = metrics.DeviceName;
        Assert.Equal(0, recorder.ObserveBytesCopied());
        metrics.FrameBytesCopied(4096); // what the host proxy's bounce buffer reports through CountCopiedBytes
        metrics.FrameBytesCopied(100);
        Assert.Equal(4196, recorder.ObserveBytesCopied());
        metrics.Dispose();
        Assert.Equal(-1, recorder.ObserveBytesCopied());
    }

    [Fact]
    public void Devices_get_distinct_device_tags()
    {
        using VirtioMediaTestbed a = NewSteppedBed();
        using VirtioMediaTestbed b = NewSteppedBed();
        Assert.StartsWith("media", a.Device.Metrics.DeviceName, StringComparison.Ordinal);
        Assert.NotEqual(a.Device.Metrics.DeviceName, b.Device.Metrics.DeviceName);
    }

    [Fact]
    public void A_frame_and_a_command_allocate_nothing_with_a_listener_on()
    {
        const int frames = 200;
        using var recorder = new MediaMetricsRecorder();
        using VirtioMediaTestbed bed = NewSteppedBed();
        recorder.Device = bed.Device.Metrics.DeviceName;
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Nv12, 320, 240);
        s.RequestBuffers(2, V4l2Memory.Mmap);
        s.QueueBuffer(0);
        s.StreamOn();

        // The guest's QBUF of buffer 0, built once and submitted through the driver's ring directly: the testbed's
        // typed helpers allocate on the driver side, which is not what is measured.
        byte[] qbuf = new byte[VirtioMediaWire.CmdIoctlSize + 88];
        MemoryMarshal.Write(qbuf, new CmdIoctl { Header = new CmdHeader { Cmd = (uint)VirtioMediaCommand.Ioctl }, SessionId = s.Id, Code = (uint)V4l2IoctlCode.QBuf });
        MemoryMarshal.Write(qbuf.AsSpan(VirtioMediaWire.CmdIoctlSize), new V4l2Buffer { Index = 0, Type = (uint)V4l2BufferType.VideoCapture, Memory = (uint)V4l2Memory.Mmap });

        // A per-frame allocation shows in every window of 200 frames; one-time runtime work (a type load, a tier-up)
        // can land in one window on a busy machine (CI saw 7,624 B once in a whole-suite run). So up to three
        // windows, and one of them must be exactly 0.
        var perWindow = new List<long>();
        for (int window = 0; window < 3 && (perWindow.Count == 0 || perWindow[^1] != 0); window++)
        {
            perWindow.Add(MeasureWindow(window == 0 ? 10 : 0));
        }
        Assert.True(perWindow[^1] == 0, $"bytes allocated per window of {frames} frames: {string.Join(", ", perWindow)}");

        long MeasureWindow(int warmup)
        {
            long allocated = 0;
            MediaMetricsRecorder.Totals before = default;
            for (int i = -warmup; i < frames; i++) // warm-up: JIT, pools, the event entry and list pools
            {
                if (i == 0)
                {
                    before = recorder.Snapshot();
                    allocated = 0;
                }
                // The device's work for one frame: render it into the MMAP buffer, queue the DQBUF, hand it to the eventq.
                long start = GC.GetAllocatedBytesForCurrentThread();
                int produced = bed.Device.ProduceFrames(Stopwatch.GetTimestamp());
                bed.Device.ProcessQueues();
                allocated += GC.GetAllocatedBytesForCurrentThread() - start;
                Assert.Equal(1, produced);

                using (TestbedFrame frame = s.DequeueFrame(Timeout))
                {
                    frame.Requeue = false;
                }

                // The device's work for one command: the re-QBUF, answered with its latency recorded.
                lock (bed.CommandLock)
                {
                    VirtQueueDriver driver = bed.CommandDriver;
                    driver.Submit(qbuf, VirtioMediaWire.RespHeaderSize + 88);
                    driver.Kick();
                    start = GC.GetAllocatedBytesForCurrentThread();
                    bed.Device.ProcessQueues();
                    allocated += GC.GetAllocatedBytesForCurrentThread() - start;
                    Assert.True(driver.TryTakeUsed(out DriverCompletion done));
                    Assert.Equal(0u, MemoryMarshal.Read<RespHeader>(driver.GetResponse(done)).Status);
                    driver.Release(done);
                }
            }
            MediaMetricsRecorder.Totals d = recorder.Snapshot() - before;
            Assert.Equal(frames, d.Frames); // the measured code did record
            Assert.Equal(frames, d.Commands);
            Assert.Equal(frames, d.LatencyMeasurements);
            return allocated;
        }
    }

    /// <summary>Sums the vmm.media.* measurements of one device. The callbacks allocate nothing (they run on the
    /// recording thread, inside the allocation measurements above).</summary>
    private sealed class MediaMetricsRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _frames, _bytesDelivered, _bytesCopied, _dqbufEvents, _commands, _ioctlCommands, _latencyMeasurements;
        private double _latencySum;
        private readonly Lock _latencyLock = new();

        public MediaMetricsRecorder()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == VmmMeter.Name && instrument.Name.StartsWith("vmm.media.", StringComparison.Ordinal))
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>(OnLong);
            _listener.SetMeasurementEventCallback<double>(OnDouble);
            _listener.Start();
        }

        /// <summary>Collects the observed instruments; returns the device's bytes_copied total, or -1 when it was not
        /// reported for the device.</summary>
        public long ObserveBytesCopied()
        {
            Interlocked.Exchange(ref _bytesCopied, -1);
            _listener.RecordObservableInstruments();
            return Interlocked.Read(ref _bytesCopied);
        }

        /// <summary>The device tag value to count; nothing is counted until it is set.</summary>
        public string? Device { get; set; }

        public readonly record struct Totals(long Frames, long BytesDelivered, long DqbufEvents, long Commands, long IoctlCommands,
            long LatencyMeasurements, double LatencySumMicroseconds)
        {
            public static Totals operator -(Totals a, Totals b) => new(a.Frames - b.Frames, a.BytesDelivered - b.BytesDelivered,
                a.DqbufEvents - b.DqbufEvents, a.Commands - b.Commands, a.IoctlCommands - b.IoctlCommands,
                a.LatencyMeasurements - b.LatencyMeasurements, a.LatencySumMicroseconds - b.LatencySumMicroseconds);
        }

        public Totals Snapshot()
        {
            lock (_latencyLock)
            {
                return new(Interlocked.Read(ref _frames), Interlocked.Read(ref _bytesDelivered), Interlocked.Read(ref _dqbufEvents),
                    Interlocked.Read(ref _commands), Interlocked.Read(ref _ioctlCommands), _latencyMeasurements, _latencySum);
            }
        }

        private bool IsOurs(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key, out string? value)
        {
            value = null;
            bool ours = false;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == MediaDeviceMetrics.DeviceTag)
                {
                    ours = tag.Value is string device && device == Device;
                }
                else if (tag.Key == key)
                {
                    value = tag.Value as string;
                }
            }
            return ours;
        }

        private void OnLong(Instrument instrument, long measurement, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            switch (instrument.Name)
            {
                case MediaDeviceMetrics.FramesName when IsOurs(tags, "", out _):
                    Interlocked.Add(ref _frames, measurement);
                    break;
                case MediaDeviceMetrics.BytesDeliveredName when IsOurs(tags, "", out _):
                    Interlocked.Add(ref _bytesDelivered, measurement);
                    break;
                case MediaDeviceMetrics.BytesCopiedName when IsOurs(tags, "", out _):
                    Interlocked.Exchange(ref _bytesCopied, measurement); // observed: the device's running total
                    break;
                case MediaDeviceMetrics.EventsName when IsOurs(tags, MediaDeviceMetrics.TypeTag, out string? type):
                    if (type == "dqbuf")
                    {
                        Interlocked.Add(ref _dqbufEvents, measurement);
                    }
                    break;
                case MediaDeviceMetrics.CommandsName when IsOurs(tags, MediaDeviceMetrics.CommandTag, out string? command):
                    Interlocked.Add(ref _commands, measurement);
                    if (command == "ioctl")
                    {
                        Interlocked.Add(ref _ioctlCommands, measurement);
                    }
                    break;
            }
        }

        private void OnDouble(Instrument instrument, double measurement, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            if (instrument.Name == MediaDeviceMetrics.CommandLatencyName && IsOurs(tags, "", out _))
            {
                lock (_latencyLock)
                {
                    _latencyMeasurements++;
                    _latencySum += measurement;
                }
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
