using System.Diagnostics;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// One open handle on a kit capture device: the V4L2 ioctls of a camera over its <see cref="V4l2BufferQueue"/>,
/// the device's <see cref="V4l2ControlSet"/>, its own <see cref="V4l2EventSubscriptions"/> and the format helpers,
/// and frame production through the source's writer. Ioctls arrive on the device's command thread; frames are
/// produced on the frame-clock thread, writing pixels without holding the queue's lock.
/// </summary>
public sealed class CaptureSession : V4l2KitSession
{
    private readonly V4l2CaptureDevice _device;
    private readonly V4l2BufferQueue _queue;
    private readonly ICaptureFrameWriter _writer;

    internal CaptureSession(V4l2CaptureDevice device, IMediaSessionHost host)
        : base(device.Controls, host)
    {
        _device = device;
        _queue = new V4l2BufferQueue(device.BufferType, host, device.Ownership);
        _writer = device.Source.OpenWriter();
    }

    /// <summary>Frames produced since the last STREAMON.</summary>
    public uint Sequence => _queue.Sequence;

    private IReadOnlyList<CaptureFormat> Formats => _device.Source.Formats;

    // ---- formats ----

    public override int EnumFormat(ref V4l2FmtDesc desc) =>
        _queue.Accepts(desc.Type) ? V4l2Formats.Enumerate(ref desc, Formats) : Errno.EINVAL;

    public override int GetFormat(ref V4l2Format format) => Answer(ref format, _device.CurrentFormat);

    public override int TryFormat(ref V4l2Format format) => Answer(ref format, Adjust(format));

    private int Answer(ref V4l2Format format, (CaptureFormat Format, uint Width, uint Height) answer)
    {
        if (!_queue.Accepts(format.Type))
        {
            return Errno.EINVAL;
        }
        V4l2Formats.Describe(ref format, answer.Format, answer.Width, answer.Height);
        return 0;
    }

    public override int SetFormat(ref V4l2Format format)
    {
        if (!_queue.Accepts(format.Type))
        {
            return Errno.EINVAL;
        }
        (CaptureFormat f, uint w, uint h) = Adjust(format);
        if (_queue.BlocksFormatChange)
        {
            return Errno.EBUSY;
        }
        _device.SetFormat(f, w, h);
        V4l2Formats.Describe(ref format, f, w, h);
        return 0;
    }

    // V4L2: an unsupported pixel format or size is replaced by a supported one, never an error.
    private (CaptureFormat Format, uint Width, uint Height) Adjust(in V4l2Format request)
    {
        (uint fourcc, uint w, uint h) = V4l2Formats.Requested(request);
        CaptureFormat f = V4l2Formats.FindOffered(Formats, fourcc, request.Type) ?? Formats[0];
        (uint nw, uint nh) = V4l2Formats.NearestSize(_device.Source.FrameSizes, w, h);
        return (f, nw, nh);
    }

    public override int EnumFrameSizes(ref V4l2FrmSizeEnum sizes) =>
        V4l2Formats.FindOffered(Formats, sizes.PixelFormat, _device.BufferType) is null
            ? Errno.EINVAL
            : V4l2Formats.EnumerateSize(ref sizes, _device.Source.FrameSizes);

    public override int EnumFrameIntervals(ref V4l2FrmIvalEnum intervals) =>
        V4l2Formats.FindOffered(Formats, intervals.PixelFormat, _device.BufferType) is null
        || !V4l2Formats.Contains(_device.Source.FrameSizes, intervals.Width, intervals.Height)
            ? Errno.EINVAL
            : V4l2Formats.EnumerateInterval(ref intervals, _device.Source.FrameRates);

    public override int GetParm(ref V4l2StreamParm parm)
    {
        if (!_queue.Accepts(parm.Type))
        {
            return Errno.EINVAL;
        }
        V4l2Formats.DescribeRate(ref parm, _device.CurrentFps);
        return 0;
    }

    public override int SetParm(ref V4l2StreamParm parm)
    {
        if (!_queue.Accepts(parm.Type))
        {
            return Errno.EINVAL;
        }
        // The rate is the device's, like the format: while another handle owns the queue, only that handle may
        // change it (as S_FMT), or any application could throttle the one streaming.
        if (_queue.IsOwnedByOther)
        {
            return Errno.EBUSY;
        }
        if (V4l2Formats.RequestedRate(parm.TimePerFrame, out uint fps))
        {
            _device.SetFps(V4l2Formats.NearestRate(_device.Source.FrameRates, fps));
        }
        V4l2Formats.DescribeRate(ref parm, _device.CurrentFps);
        return 0;
    }

    // ---- the one input ----

    public override int EnumInput(ref V4l2Input input)
    {
        if (input.Index != 0)
        {
            return Errno.EINVAL;
        }
        input = default;
        input.Type = V4l2Const.InputTypeCamera;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref input.Name[0], _device.Source.InputName);
        }
        return 0;
    }

    public override int GetInput(out uint index)
    {
        index = 0;
        return 0;
    }

    public override int SetInput(ref uint index) => index == 0 ? 0 : Errno.EINVAL;

    // ---- selection (no cropping: every rectangle is the full frame) ----

    public override int GetSelection(ref V4l2Selection selection)
    {
        if (!_queue.Accepts(selection.Type)
            || selection.Target is not (V4l2Const.SelTgtCrop or V4l2Const.SelTgtCropDefault or V4l2Const.SelTgtCropBounds or V4l2Const.SelTgtNativeSize))
        {
            return Errno.EINVAL;
        }
        (_, uint w, uint h) = _device.CurrentFormat;
        selection.Flags = 0;
        selection.Rect = new V4l2Rect { Left = 0, Top = 0, Width = w, Height = h };
        return 0;
    }

    // No S_SELECTION: the size is chosen among several discrete frame sizes with S_FMT, and V4L2 (checked by
    // v4l2-compliance) does not allow a crop that could change it as well.
    public override int SetSelection(ref V4l2Selection selection) => Errno.ENOTTY;

    // ---- buffers: the queue, with buffers of the current format ----

    public override int RequestBuffers(ref V4l2RequestBuffers request)
    {
        Span<uint> sizes = stackalloc uint[V4l2BufferQueue.MaxMemoryPlanes];
        return _queue.RequestBuffers(ref request, CurrentPlaneSizes(sizes));
    }

    public override int CreateBuffers(ref V4l2CreateBuffers create)
    {
        Span<uint> sizes = stackalloc uint[V4l2BufferQueue.MaxMemoryPlanes];
        return _queue.CreateBuffers(ref create, CurrentPlaneSizes(sizes));
    }

    private Span<uint> CurrentPlaneSizes(Span<uint> sizes)
    {
        (CaptureFormat f, uint w, uint h) = _device.CurrentFormat;
        return V4l2Formats.PlaneSizes(f, w, h, sizes);
    }

    public override int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes) => _queue.QueryBuffer(ref buffer, planes);

    public override int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) =>
        _queue.PrepareBuffer(ref buffer, planes, pages);

    public override int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) =>
        _queue.QueueBuffer(ref buffer, planes, pages);

    public override int StreamOn(uint bufferType) => _queue.StreamOn(bufferType);

    public override int StreamOff(uint bufferType) => _queue.StreamOff(bufferType);

    public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer) => _queue.FindMmapBuffer(memOffset, out buffer);

    // ---- frame production ----

    public override long NextFrameDeadline => _queue.NextDeadline;

    public override void ProduceFrames(long now)
    {
        V4l2FillTicket ticket;
        CaptureFormat format;
        uint width, height;
        // The format is read with the buffer taken, atomically: S_FMT is refused while buffers exist, so it matches them.
        lock (_queue.SyncRoot)
        {
            if (!_queue.TryStartFill(now, _device.FrameInterval, out ticket))
            {
                return;
            }
            (format, width, height) = _device.CurrentFormat;
        }

        long timestamp = Stopwatch.GetTimestamp();
        try
        {
            // An MMAP buffer released meanwhile (REQBUFS(0), CLOSE) has no planes to fill.
            if (V4l2BufferQueue.HasMemory(ticket))
            {
                var frame = new CaptureFrame
                {
                    Format = format,
                    Width = width,
                    Height = height,
                    Sequence = ticket.Sequence,
                    HoldsEarlierFrame = V4l2BufferQueue.HoldsEarlierFrame(ticket),
                    Plane0 = _queue.Destination(ticket, 0),
                    Plane1 = _queue.Destination(ticket, 1),
                    Plane2 = _queue.Destination(ticket, 2),
                };
                _writer.Fill(ref frame);
                V4l2BufferQueue.MarkFilled(ticket);
            }
            if (Host.FrameObserver is { } observer)
            {
                ReportFrame(observer, ticket, format, width, height);
            }
        }
        finally
        {
            _queue.EndFill(ticket);
        }
        _queue.CompleteFill(ticket, timestamp);
    }

    // Shows a filled MMAP buffer to the observer while the fill still holds its planes' references (frames in
    // guest pages are scattered and not reported).
    private void ReportFrame(IFrameObserver observer, in V4l2FillTicket ticket, CaptureFormat format, uint width, uint height)
    {
        ReadOnlySpan<byte> plane0 = V4l2BufferQueue.MmapPlane(ticket, 0);
        if (plane0.IsEmpty)
        {
            return;
        }
        var frame = new CompletedFrame(Host.SessionId, ticket.Sequence, _device.Source.Layout(format, width, height),
            plane0, V4l2BufferQueue.MmapPlane(ticket, 1), V4l2BufferQueue.MmapPlane(ticket, 2));
        observer.FrameCompleted(frame);
    }

    public override void Dispose()
    {
        _queue.Close();
        CloseEvents();
    }
}
