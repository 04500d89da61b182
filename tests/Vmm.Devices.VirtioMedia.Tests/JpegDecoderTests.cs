using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Backends.JpegDecoder;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Kit;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.Testing.VirtioMedia;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>
/// The kit's stateful memory-to-memory decoder with the built-in JPEG codec, driven through the testbed as the guest
/// driver would: source-change initialization, decoding into every CAPTURE format, timestamp copy, drain with
/// DECODER_CMD, dynamic resolution change, corrupt input, hostile buffers, and per-session scheduling.
/// </summary>
public sealed class JpegDecoderTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);
    private const uint OutputType = (uint)V4l2BufferType.VideoOutputMplane, CaptureType = (uint)V4l2BufferType.VideoCaptureMplane;

    private static VirtioMediaTestbed CreateBed()
    {
        Assert.True(MediaBackendSpecs.TryParse("jpeg-decoder", out IMediaBackendOptions? options, out string? error), error);
        return VirtioMediaTestbed.Create(options);
    }

    [Fact]
    public void The_config_space_announces_a_multi_planar_m2m_device()
    {
        using VirtioMediaTestbed bed = CreateBed();
        VirtioMediaConfig config = bed.ReadConfig();
        Assert.Equal(V4l2Const.CapVideoM2mMplane | V4l2Const.CapStreaming, config.DeviceCaps);
    }

    [Fact]
    public void The_first_frame_announces_its_size_and_decodes_into_nv12_with_its_timestamp_copied()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] rgb = TestJpeg.Gradient(320, 240);
        byte[] jpeg = TestJpeg.Encode(rgb, 320, 240);
        c.Subscribe(V4l2Const.EventSourceChange);
        c.SetFormat(OutputType, FourCc.Jpeg, 0, 0);
        c.RequestBuffers(OutputType, 2);
        c.QueueOutput(0, jpeg, 1234, 5678);
        c.StreamOn(OutputType);

        V4l2Event change = c.WaitV4l2Event();
        Assert.Equal((V4l2Const.EventSourceChange, V4l2Const.EventSrcChResolution), (change.Type, change.SrcChangeChanges));
        V4l2Format f = c.GetFormat(CaptureType);
        Assert.Equal((FourCc.Nv12, 320u, 240u, 320u * 240 * 3 / 2), (f.PixMp.PixelFormat, f.PixMp.Width, f.PixMp.Height, f.PixMp.PlaneFmt(0).SizeImage));
        Assert.Equal((320u, 240u), c.Compose());

        c.RequestBuffers(CaptureType, 2);
        c.QueueCapture(0);
        c.QueueCapture(1);
        c.StreamOn(CaptureType);
        EventDqbuf decoded = c.Dequeue(CaptureType);
        Assert.Equal(320u * 240 * 3 / 2, decoded.Planes[0].BytesUsed);
        Assert.Equal((1234L, 5678L), (decoded.Buffer.TimestampSec, decoded.Buffer.TimestampUsec));
        Assert.Equal(V4l2Const.BufFlagTimestampCopy, decoded.Buffer.Flags & (V4l2Const.BufFlagTimestampCopy | V4l2Const.BufFlagError | V4l2Const.BufFlagLast));
        EventDqbuf consumed = c.Dequeue(OutputType);
        Assert.Equal(((uint)jpeg.Length, 0u), (consumed.Planes[0].BytesUsed, consumed.Buffer.Flags & V4l2Const.BufFlagError));

        Span<byte> nv12 = c.CapturePlane((int)decoded.Buffer.Index);
        Assert.True(MeanLumaError(nv12, 320, 320, 240, rgb) < 3, $"luma error {MeanLumaError(nv12, 320, 320, 240, rgb)}");
        // Chroma of the left edge (red 0) is bluer than that of the right edge (red 255): Cr rises with red.
        int row = 60 * 320 + 240 * 320;
        Assert.True(nv12[row + 1] + 40 < nv12[row + 318 + 1], $"Cr left {nv12[row + 1]} right {nv12[row + 319]}");
    }

    [Theory]
    [InlineData(TestJpeg.Subsampling422, "RGB3")]
    [InlineData(TestJpeg.Subsampling444, "XR24")]
    [InlineData(TestJpeg.Subsampling420, "YU12")]
    [InlineData(TestJpeg.SubsamplingGray, "NV12")]
    public void Odd_sizes_and_every_subsampling_decode_into_aligned_buffers_of_each_format(int subsampling, string fourcc)
    {
        const int Width = 101, Height = 75, Aligned = 112, AlignedHeight = 80;
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] rgb = TestJpeg.Gradient(Width, Height, blue: 40);
        byte[] jpeg = TestJpeg.Encode(rgb, Width, Height, subsampling);
        uint format = FourCc.Make(fourcc[0], fourcc[1], fourcc[2], fourcc[3]);
        // The application that knows its stream sets both formats up front.
        c.SetFormat(OutputType, FourCc.Mjpeg, Width, Height);
        V4l2Format f = c.SetFormat(CaptureType, format, 0, 0);
        Assert.Equal((format, (uint)Aligned, (uint)AlignedHeight), (f.PixMp.PixelFormat, f.PixMp.Width, f.PixMp.Height));
        c.RequestBuffers(OutputType, 1);
        c.RequestBuffers(CaptureType, 1);
        c.QueueCapture(0);
        c.StreamOn(CaptureType);
        c.QueueOutput(0, jpeg, 1, 0);
        c.StreamOn(OutputType);
        EventDqbuf decoded = c.Dequeue(CaptureType);
        Assert.Equal(0u, decoded.Buffer.Flags & V4l2Const.BufFlagError);
        Assert.Equal(f.PixMp.PlaneFmt(0).SizeImage, decoded.Planes[0].BytesUsed);
        Span<byte> frame = c.CapturePlane(0);

        double error = 0;
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++)
            {
                int i = (y * Width + x) * 3;
                int expected = subsampling == TestJpeg.SubsamplingGray || fourcc is "NV12" or "YU12"
                    ? TestJpeg.Luma(rgb[i], rgb[i + 1], rgb[i + 2])
                    : rgb[i];
                int actual = fourcc switch
                {
                    "RGB3" => frame[y * Aligned * 3 + x * 3],
                    "XR24" => frame[y * Aligned * 4 + x * 4 + 2], // B, G, R, X
                    _ => frame[y * Aligned + x],
                };
                error += Math.Abs(expected - actual);
            }
        }
        error /= Width * Height;
        Assert.True(error < 4, $"mean error {error:F2}");
        if (subsampling == TestJpeg.SubsamplingGray)
        {
            Assert.Equal(-1, frame.Slice(Aligned * AlignedHeight, (Width + 1) / 2 * 2).IndexOfAnyExcept((byte)128));
        }
    }

    [Fact]
    public void Decoder_cmd_stop_flags_the_last_frame_queued_before_it_and_start_resumes()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        c.Subscribe(V4l2Const.EventEos);
        c.StartStreaming(64, 48, outputs: 4, captures: 4);
        // Hold CAPTURE back, queue three frames, then STOP: the third one's CAPTURE buffer is the last.
        for (int i = 0; i < 3; i++)
        {
            c.QueueOutput(i, jpeg, 10 + i, 0);
        }
        Assert.Equal(0, c.DecoderCmd(V4l2Const.DecCmdStop));
        Assert.Equal(Errno.EBUSY, c.DecoderCmd(V4l2Const.DecCmdStop));
        for (int i = 0; i < 4; i++)
        {
            c.QueueCapture(i);
        }
        for (int i = 0; i < 3; i++)
        {
            EventDqbuf frame = c.Dequeue(CaptureType);
            Assert.Equal(10L + i, frame.Buffer.TimestampSec);
            Assert.Equal(i == 2 ? V4l2Const.BufFlagLast : 0, frame.Buffer.Flags & V4l2Const.BufFlagLast);
            Assert.Equal(64u * 48 * 3 / 2, frame.Planes[0].BytesUsed);
        }
        Assert.Equal(V4l2Const.EventEos, c.WaitV4l2Event().Type);

        // Stopped: a new frame waits for START.
        c.Dequeue(OutputType);
        c.QueueOutput(0, jpeg, 20, 0);
        Assert.Null(c.TryDequeue(CaptureType, TimeSpan.FromMilliseconds(300)));
        Assert.Equal(0, c.DecoderCmd(V4l2Const.DecCmdStart));
        Assert.Equal(20L, c.Dequeue(CaptureType).Buffer.TimestampSec);
    }

    [Fact]
    public void Stop_with_nothing_queued_returns_an_empty_last_buffer()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        c.Subscribe(V4l2Const.EventEos);
        c.StartStreaming(64, 48, outputs: 1, captures: 1);
        Assert.Equal(0, c.TryDecoderCmd(V4l2Const.DecCmdStop));
        Assert.Equal(Errno.EINVAL, c.TryDecoderCmd(V4l2Const.DecCmdPause));
        Assert.Equal(0, c.DecoderCmd(V4l2Const.DecCmdStop));
        c.QueueCapture(0);
        EventDqbuf last = c.Dequeue(CaptureType);
        Assert.Equal((V4l2Const.BufFlagLast, 0u), (last.Buffer.Flags & V4l2Const.BufFlagLast, last.Planes[0].BytesUsed));
        Assert.Equal(V4l2Const.EventEos, c.WaitV4l2Event().Type);
    }

    [Fact]
    public void A_new_size_mid_stream_ends_the_old_one_with_last_and_a_source_change()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] small = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        byte[] large = TestJpeg.Encode(TestJpeg.Gradient(160, 120), 160, 120);
        c.Subscribe(V4l2Const.EventSourceChange);
        c.StartStreaming(64, 48, outputs: 2, captures: 2);
        c.QueueCapture(0);
        c.QueueCapture(1);
        c.QueueOutput(0, small, 1, 0);
        Assert.Equal(0u, c.Dequeue(CaptureType).Buffer.Flags & V4l2Const.BufFlagLast);
        c.QueueOutput(1, large, 2, 0);
        EventDqbuf last = c.Dequeue(CaptureType);
        Assert.Equal((V4l2Const.BufFlagLast, 0u), (last.Buffer.Flags & V4l2Const.BufFlagLast, last.Planes[0].BytesUsed));
        Assert.Equal(V4l2Const.EventSourceChange, c.WaitV4l2Event().Type);

        // The application sets CAPTURE up for the new size; the frame that changed it is decoded then.
        c.StreamOff(CaptureType);
        V4l2Format f = c.GetFormat(CaptureType);
        Assert.Equal((160u, 128u), (f.PixMp.Width, f.PixMp.Height));
        Assert.Equal((160u, 120u), c.Compose());
        c.RequestBuffers(CaptureType, 0);
        c.RequestBuffers(CaptureType, 2);
        c.QueueCapture(0);
        c.StreamOn(CaptureType);
        EventDqbuf decoded = c.Dequeue(CaptureType);
        Assert.Equal((2L, 160u * 128 * 3 / 2), (decoded.Buffer.TimestampSec, decoded.Planes[0].BytesUsed));
    }

    [Fact]
    public void Corrupt_input_costs_one_empty_error_buffer_and_the_session_decodes_on()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(320, 240), 320, 240);
        c.Subscribe(V4l2Const.EventSourceChange);
        c.StartStreaming(320, 240, outputs: 2, captures: 2);
        byte[] garbage = new byte[4096];
        new Random(7).NextBytes(garbage);
        // Without a CAPTURE buffer the bad frame waits: every OUTPUT buffer is answered by one CAPTURE buffer.
        c.QueueOutput(0, garbage, 1, 0);
        Assert.Null(c.TryDequeue(OutputType, TimeSpan.FromMilliseconds(200)));
        c.QueueCapture(0);
        EventDqbuf rejected = c.Dequeue(OutputType);
        Assert.Equal(V4l2Const.BufFlagError, rejected.Buffer.Flags & V4l2Const.BufFlagError);
        EventDqbuf empty = c.Dequeue(CaptureType);
        Assert.Equal((V4l2Const.BufFlagError, 0u, 1L), (empty.Buffer.Flags & V4l2Const.BufFlagError, empty.Planes[0].BytesUsed, empty.Buffer.TimestampSec));
        // Garbage says nothing about the size: no SOURCE_CHANGE, and the format stays.
        Assert.Null(c.TryWaitV4l2Event(TimeSpan.Zero));
        Assert.Equal(320u, c.GetFormat(CaptureType).PixMp.Width);

        // A JPEG cut short decodes what it can or reports an error, and never writes past its buffer.
        c.QueueCapture(1);
        c.QueueOutput(1, jpeg.AsSpan(0, jpeg.Length * 3 / 4), 2, 0);
        Assert.Equal(2L, c.Dequeue(CaptureType).Buffer.TimestampSec);
        c.QueueCapture(0);
        c.QueueOutput(0, jpeg, 3, 0);
        EventDqbuf good = c.Dequeue(CaptureType);
        Assert.Equal((3L, 0u), (good.Buffer.TimestampSec, good.Buffer.Flags & V4l2Const.BufFlagError));
    }

    [Fact]
    public void Output_payloads_beyond_the_buffer_are_refused()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        c.SetFormat(OutputType, FourCc.Jpeg, 64, 48);
        c.RequestBuffers(OutputType, 1);
        uint length = c.OutputLength;
        Assert.Equal(Errno.EINVAL, c.TryQueueOutput(0, bytesUsed: length + 1, dataOffset: 0));
        Assert.Equal(Errno.EINVAL, c.TryQueueOutput(0, bytesUsed: 100, dataOffset: 100));
        Assert.Equal(Errno.EINVAL, c.TryQueueOutput(0, bytesUsed: 100, dataOffset: 0, timestampUsec: 1_000_000));
        Assert.Equal(0, c.TryQueueOutput(0, bytesUsed: 0, dataOffset: 0)); // 0 means the whole buffer, as vb2
        Assert.Equal(Errno.EINVAL, c.TryQueueOutput(0, bytesUsed: 100, dataOffset: 0)); // already queued
    }

    [Fact]
    public void Timecode_and_timestamp_source_go_back_with_the_output_buffer_and_on_to_the_decoded_one()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        c.StartStreaming(64, 48, outputs: 1, captures: 1);
        c.QueueCapture(0);
        var timecode = new V4l2Timecode { Type = 1, Frames = 5, Seconds = 6, Minutes = 7, Hours = 1, UserBits = 0xabcd };
        const uint Copied = V4l2Const.BufFlagTimecode | V4l2Const.BufFlagTstampSrcSoe;
        V4l2Buffer reply = c.QueueOutputWith(0, jpeg, 9, 10, Copied, timecode);
        Assert.Equal((Copied, 9L, 10L, timecode), (reply.Flags & Copied, reply.TimestampSec, reply.TimestampUsec, reply.Timecode));
        EventDqbuf decoded = c.Dequeue(CaptureType);
        Assert.Equal((Copied, 9L, 10L, timecode), (decoded.Buffer.Flags & (V4l2Const.BufFlagTimecode | V4l2Const.BufFlagTstampSrcMask),
            decoded.Buffer.TimestampSec, decoded.Buffer.TimestampUsec, decoded.Buffer.Timecode));
        EventDqbuf consumed = c.Dequeue(OutputType);
        Assert.Equal((Copied, timecode), (consumed.Buffer.Flags & Copied, consumed.Buffer.Timecode));
    }

    [Fact]
    public void A_prepared_output_buffer_keeps_the_payload_it_was_prepared_with()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        c.SetFormat(OutputType, FourCc.Jpeg, 64, 48);
        c.RequestBuffers(OutputType, 1);
        Assert.Equal(Errno.EINVAL, c.TryOutputIoctl(V4l2IoctlCode.PrepareBuf, c.OutputLength + 1, 0, out _));
        Assert.Equal(0, c.TryOutputIoctl(V4l2IoctlCode.PrepareBuf, 1000, 0, out V4l2Buffer prepared));
        Assert.Equal((V4l2Const.BufFlagPrepared, 0L, 0u), (prepared.Flags & (V4l2Const.BufFlagPrepared | V4l2Const.BufFlagQueued), prepared.TimestampSec, prepared.Sequence));
        // vb2 takes the prepared payload and ignores what QBUF sends.
        Assert.Equal(0, c.TryOutputIoctl(V4l2IoctlCode.QBuf, 0xdeadbeef, 0xdeadbeef, out V4l2Buffer queued, timestampSec: 4));
        Assert.Equal((1000u, V4l2Const.BufFlagQueued), (queued.BytesUsed, queued.Flags & (V4l2Const.BufFlagPrepared | V4l2Const.BufFlagQueued)));
        Assert.Equal(4L, queued.TimestampSec);
    }

    [Fact]
    public void Formats_are_per_session_and_only_the_capture_pixel_format_is_the_applications()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var a = new TestbedM2mSession(bed);
        using var b = new TestbedM2mSession(bed);
        a.SetFormat(OutputType, FourCc.Jpeg, 1920, 1080);
        V4l2Format fa = a.SetFormat(CaptureType, FourCc.Rgb24, 5, 5);
        V4l2Format fb = b.GetFormat(CaptureType);
        Assert.Equal((FourCc.Rgb24, 1920u, 1088u), (fa.PixMp.PixelFormat, fa.PixMp.Width, fa.PixMp.Height));
        Assert.Equal((FourCc.Nv12, 640u, 480u), (fb.PixMp.PixelFormat, fb.PixMp.Width, fb.PixMp.Height));
        // Buffers of one session do not make another's S_FMT busy (each session has its own queues).
        a.RequestBuffers(OutputType, 1);
        b.SetFormat(OutputType, FourCc.Mjpeg, 320, 240);
        Assert.Equal(Errno.EBUSY, a.TrySetFormat(OutputType, FourCc.Mjpeg, 320, 240));
    }

    // ---- per-session scheduling ----

    // A codec whose first session blocks in Decode until released: the kit must go on decoding for the others.
    private sealed class GatedCodec(IDecoderCodec inner) : IDecoderCodec
    {
        public readonly ManualResetEventSlim FirstDecoding = new(false), Release = new(false);
        private int _opened;

        public IReadOnlyList<CodedFormat> CodedFormats => inner.CodedFormats;

        public IReadOnlyList<CaptureFormat> DecodedFormats => inner.DecodedFormats;

        public (uint MinWidth, uint MinHeight, uint MaxWidth, uint MaxHeight) SizeLimits => inner.SizeLimits;

        public uint Alignment => inner.Alignment;

        public IFrameDecoder OpenDecoder() => new Gated(inner.OpenDecoder(), Interlocked.Increment(ref _opened) == 1 ? this : null);

        private sealed class Gated(IFrameDecoder decoder, GatedCodec? gate) : IFrameDecoder
        {
            public bool TryReadHeader(ReadOnlySpan<byte> coded, out CodedFrameInfo info) => decoder.TryReadHeader(coded, out info);

            public bool Decode(ReadOnlySpan<byte> coded, in CodedFrameInfo info, ref CaptureFrame frame)
            {
                if (gate is not null)
                {
                    gate.FirstDecoding.Set();
                    gate.Release.Wait(TimeSpan.FromSeconds(20));
                }
                return decoder.Decode(coded, info, ref frame);
            }

            public void Dispose() => decoder.Dispose();
        }
    }

    private sealed class GatedOptions(GatedCodec codec) : IMediaBackendOptions
    {
        public ulong SharedMemorySize => 64UL << 20;

        public MediaDeviceLimits Limits => MediaDeviceLimits.Default;

        public IMediaBackend CreateBackend(ILogger logger) => new GatedBackend(new V4l2DecoderDevice(codec));
    }

    private sealed class GatedBackend(V4l2DecoderDevice device) : IMediaBackend
    {
        public uint DeviceCaps => V4l2DecoderDevice.DeviceCaps;

        public string Card => "gated";

        public int Open(IMediaSessionHost host, out MediaBackendSession? session)
        {
            session = device.Open(host);
            return 0;
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public void A_session_stuck_in_its_decoder_holds_up_neither_other_sessions_nor_commands()
    {
        var codec = new GatedCodec(new JpegCodec());
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new GatedOptions(codec));
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        using var slow = new TestbedM2mSession(bed);
        using var fast = new TestbedM2mSession(bed);
        slow.StartStreaming(64, 48, outputs: 1, captures: 1);
        slow.QueueCapture(0);
        slow.QueueOutput(0, jpeg, 1, 0);
        Assert.True(codec.FirstDecoding.Wait(Timeout), "the slow session never started decoding");

        fast.StartStreaming(64, 48, outputs: 1, captures: 1);
        for (int i = 0; i < 5; i++)
        {
            fast.QueueCapture(0);
            fast.QueueOutput(0, jpeg, 100 + i, 0);
            Assert.Equal(100L + i, fast.Dequeue(CaptureType).Buffer.TimestampSec);
            fast.Dequeue(OutputType);
        }
        Assert.Null(slow.TryDequeue(CaptureType, TimeSpan.Zero));
        codec.Release.Set();
        Assert.Equal(1L, slow.Dequeue(CaptureType).Buffer.TimestampSec);
    }

    // A codec whose decoder throws on every frame: a bug in a backend.
    private sealed class ThrowingCodec(IDecoderCodec inner) : IDecoderCodec
    {
        public IReadOnlyList<CodedFormat> CodedFormats => inner.CodedFormats;

        public IReadOnlyList<CaptureFormat> DecodedFormats => inner.DecodedFormats;

        public (uint MinWidth, uint MinHeight, uint MaxWidth, uint MaxHeight) SizeLimits => inner.SizeLimits;

        public uint Alignment => inner.Alignment;

        public IFrameDecoder OpenDecoder() => new Throwing(inner.OpenDecoder());

        private sealed class Throwing(IFrameDecoder decoder) : IFrameDecoder
        {
            public bool TryReadHeader(ReadOnlySpan<byte> coded, out CodedFrameInfo info) => decoder.TryReadHeader(coded, out info);

            public bool Decode(ReadOnlySpan<byte> coded, in CodedFrameInfo info, ref CaptureFrame frame) =>
                throw new InvalidOperationException("decoder bug");

            public void Dispose() => decoder.Dispose();
        }
    }

    private sealed class CodecOptions(IDecoderCodec codec) : IMediaBackendOptions
    {
        public ulong SharedMemorySize => 64UL << 20;

        public MediaDeviceLimits Limits => MediaDeviceLimits.Default;

        public IMediaBackend CreateBackend(ILogger logger) => new GatedBackend(new V4l2DecoderDevice(codec));
    }

    [Fact]
    public void A_decoder_that_throws_fails_its_session_with_an_error_event_and_nothing_else()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new CodecOptions(new ThrowingCodec(new JpegCodec())));
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        using var broken = new TestbedM2mSession(bed);
        broken.StartStreaming(64, 48, outputs: 1, captures: 1);
        broken.QueueCapture(0);
        broken.QueueOutput(0, jpeg, 1, 0);
        Assert.NotNull(broken.Session.WaitEvent(VirtioMediaEventType.Error, Timeout));
        // The device lives on: a new session is served (and its decoder throws too, which fails only it).
        using var next = new TestbedM2mSession(bed);
        Assert.Equal(64u, next.SetFormat(OutputType, FourCc.Jpeg, 64, 48).PixMp.Width);
        Assert.Null(bed.NeedsResetReason);
    }

    [Fact]
    public void Shared_pages_buffers_on_both_queues_decode_through_guest_ram()
    {
        using VirtioMediaTestbed bed = CreateBed();
        using var c = new TestbedM2mSession(bed);
        byte[] rgb = TestJpeg.Gradient(320, 240);
        byte[] jpeg = TestJpeg.Encode(rgb, 320, 240);
        Assert.True(jpeg.Length > 4096, $"the JPEG ({jpeg.Length} bytes) must span both page ranges");
        c.SetFormat(OutputType, FourCc.Jpeg, 320, 240);
        c.RequestBuffers(OutputType, 1, V4l2Memory.UserPtr);
        c.RequestBuffers(CaptureType, 1, V4l2Memory.UserPtr);
        // Two scattered guest page ranges per buffer, the second before the first.
        const ulong In = 0x100000, Out = 0x400000;
        uint outputLength = c.OutputLength, frameSize = 320 * 240 * 3 / 2;
        jpeg.AsSpan(0, 4096).CopyTo(bed.GuestMemory.GetSpan(new Vmm.Core.Memory.GuestAddress(In + 0x80000), 4096));
        jpeg.AsSpan(4096).CopyTo(bed.GuestMemory.GetSpan(new Vmm.Core.Memory.GuestAddress(In), (ulong)(jpeg.Length - 4096)));
        SgEntry[] input = [new SgEntry { Start = In + 0x80000, Length = 4096 }, new SgEntry { Start = In, Length = outputLength - 4096 }];
        SgEntry[] output = [new SgEntry { Start = Out + 0x80000, Length = 4096 }, new SgEntry { Start = Out, Length = frameSize - 4096 }];
        Assert.Equal(0, c.QueueShared(OutputType, input, (uint)jpeg.Length, 7));
        Assert.Equal(0, c.QueueShared(CaptureType, output, 0, 0));
        c.StreamOn(CaptureType);
        c.StreamOn(OutputType);
        EventDqbuf decoded = c.Dequeue(CaptureType);
        Assert.Equal((7L, frameSize, 0u), (decoded.Buffer.TimestampSec, decoded.Planes[0].BytesUsed, decoded.Buffer.Flags & V4l2Const.BufFlagError));
        byte[] frame = new byte[frameSize];
        bed.GuestMemory.GetSpan(new Vmm.Core.Memory.GuestAddress(Out + 0x80000), 4096).CopyTo(frame);
        bed.GuestMemory.GetSpan(new Vmm.Core.Memory.GuestAddress(Out), frameSize - 4096).CopyTo(frame.AsSpan(4096));
        Assert.True(MeanLumaError(frame, 320, 320, 240, rgb) < 3);
        Assert.True(bed.Device.Metrics.BytesCopiedTotal >= jpeg.Length + frameSize, "gathering and scattering are counted as copies");
    }

    [Theory]
    [InlineData("jpeg-decoder,card=Cam", null)]
    [InlineData("jpeg-decoder,width=3", "unknown key 'width'")]
    [InlineData("jpeg-decoder,card=", "card name")]
    public void The_spec_parses_or_names_its_problem(string spec, string? error)
    {
        bool ok = MediaBackendSpecs.TryParse(spec, out IMediaBackendOptions? options, out string? message);
        Assert.Equal(error is null, ok);
        if (error is null)
        {
            Assert.Equal("Cam", Assert.IsType<JpegDecoderOptions>(options).Card);
        }
        else
        {
            Assert.Contains(error, message);
        }
    }

    private static double MeanLumaError(ReadOnlySpan<byte> frame, int stride, int width, int height, byte[] rgb)
    {
        double sum = 0;
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                sum += Math.Abs(frame[y * stride + x] - TestJpeg.Luma(rgb[i], rgb[i + 1], rgb[i + 2]));
            }
        }
        return sum / (width * height);
    }
}

public sealed class ChromaInterleaveTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(960)]
    [InlineData(1001)]
    public void Vector_interleave_equals_the_pairwise_definition(int length)
    {
        var random = new Random(length);
        byte[] u = new byte[length], v = new byte[length];
        random.NextBytes(u);
        random.NextBytes(v);
        byte[] uv = new byte[2 * length + 3];
        uv.AsSpan().Fill(0xEE);
        Vmm.Devices.VirtioMedia.Backends.JpegDecoder.JpegFrameDecoder.Interleave(u, v, uv);
        for (int x = 0; x < length; x++)
        {
            Assert.Equal((u[x], v[x]), (uv[2 * x], uv[2 * x + 1]));
        }
        Assert.Equal(-1, uv.AsSpan(2 * length).IndexOfAnyExcept((byte)0xEE)); // nothing past the row
    }
}

/// <summary>The JPEG decoder against frames that lie: whatever the bytes say, writes stay inside the CAPTURE buffer.</summary>
public sealed class JpegFrameDecoderHostileTests
{
    private const int Width = 320, Height = 240, Guard = 4096;

    // A CAPTURE buffer of exactly the aligned frame size, followed by guard bytes that must survive.
    private static bool DecodeInto(JpegFrameDecoder decoder, byte[] headerFrom, byte[] decodeFrom, string fourcc, out byte[] memory, out int size)
    {
        CaptureFormat format = new JpegCodec().DecodedFormats.First(f => V4l2.FourCc.ToString(f.FourCc) == fourcc);
        size = (int)format.SizeImage(0, Width, Height);
        memory = new byte[size + Guard];
        memory.AsSpan(size).Fill(0xA5);
        Assert.True(decoder.TryReadHeader(headerFrom, out CodedFrameInfo info));
        var frame = new CaptureFrame { Format = format, Width = Width, Height = Height, Plane0 = new Buffers.PlaneDestination(memory.AsSpan(0, size)) };
        return decoder.Decode(decodeFrom, info, ref frame);
    }

    [Theory]
    [InlineData("NV12")]
    [InlineData("YU12")]
    [InlineData("RGB3")]
    [InlineData("XR24")]
    public void A_frame_that_changes_size_and_subsampling_after_its_header_was_read_writes_only_its_buffer(string fourcc)
    {
        using var decoder = new JpegFrameDecoder();
        byte[] small = TestJpeg.Encode(TestJpeg.Gradient(Width, Height), Width, Height, TestJpeg.Subsampling420);
        // What a guest could put in the MMAP buffer between the two reads: a larger picture with full chroma.
        byte[] large = TestJpeg.Encode(TestJpeg.Gradient(4 * Width, 4 * Height), 4 * Width, 4 * Height, TestJpeg.Subsampling444);
        DecodeInto(decoder, small, large, fourcc, out byte[] memory, out int size);
        Assert.Equal(-1, memory.AsSpan(size).IndexOfAnyExcept((byte)0xA5));
    }

    [Fact]
    public void A_header_claiming_a_size_beyond_the_limits_is_refused_before_decoding()
    {
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new JpegDecoderOptions());
        using var c = new TestbedM2mSession(bed);
        byte[] jpeg = TestJpeg.Encode(TestJpeg.Gradient(64, 48), 64, 48);
        // The SOF0 segment: FF C0, length, precision, then height and width (big-endian).
        int sof = jpeg.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        Assert.True(sof > 0);
        jpeg[sof + 5] = 0xFF;
        jpeg[sof + 6] = 0xFF;
        jpeg[sof + 7] = 0xFF;
        jpeg[sof + 8] = 0xFF;
        const uint Output = (uint)V4l2BufferType.VideoOutputMplane, Capture = (uint)V4l2BufferType.VideoCaptureMplane;
        c.StartStreaming(64, 48, outputs: 1, captures: 1);
        c.QueueCapture(0);
        c.QueueOutput(0, jpeg, 1, 0);
        EventDqbuf refused = c.Dequeue(Capture);
        Assert.Equal((V4l2Const.BufFlagError, 0u), (refused.Buffer.Flags & V4l2Const.BufFlagError, refused.Planes[0].BytesUsed));
        Assert.Equal(V4l2Const.BufFlagError, c.Dequeue(Output).Buffer.Flags & V4l2Const.BufFlagError);
        Assert.Equal(64u, c.GetFormat(Capture).PixMp.Width); // the size stays as it was
    }
}
