using System.Buffers.Binary;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// One decoding context of a <see cref="V4l2DecoderDevice"/>: an OUTPUT queue of coded frames and a CAPTURE queue of
/// decoded ones, with formats of its own, and the stateful decoder's sequences (the V4L2 "Memory-to-Memory Stateful
/// Video Decoder Interface"):
/// <list type="bullet">
/// <item>initialization and dynamic resolution change: a coded frame whose header shows a new size stops decoding;
/// frames before it are returned, the last CAPTURE buffer flagged LAST (empty when none is left), SOURCE_CHANGE is
/// sent, and decoding resumes once the application has set CAPTURE up again (STREAMON);</item>
/// <item>drain: DECODER_CMD STOP flags the CAPTURE buffer of the last OUTPUT buffer queued before it LAST and sends
/// EOS; DECODER_CMD START (or a STREAMOFF) resumes.</item>
/// </list>
/// Ioctls run on the device's command thread; frames are decoded on this session's own thread-pool work item, one
/// at a time, reading OUTPUT buffers in place (MMAP) and writing CAPTURE buffers in place.
/// </summary>
public sealed partial class DecoderSession : V4l2KitSession, IThreadPoolWorkItem
{
    // Largest OUTPUT buffer (one coded frame) an application may ask for.
    private const uint MaxCodedBufferBytes = 32u << 20;

    // Offset of flags in struct v4l2_decoder_cmd (72 bytes: cmd, flags, then the 64-byte union).
    private const int DecoderCmdFlagsOffset = 4;

    private const uint OutputType = (uint)V4l2BufferType.VideoOutputMplane, CaptureType = (uint)V4l2BufferType.VideoCaptureMplane;

    private readonly V4l2DecoderDevice _device;
    private readonly IFrameDecoder _decoder;
    private readonly V4l2BufferQueue _output, _capture;
    private readonly object _lock = new();

    // Formats (under _lock). The stream size is what the last header said, or the OUTPUT format's until one did.
    private CodedFormat _codedFormat;
    private uint _codedWidth, _codedHeight, _codedBufferSize;
    private CaptureFormat _decodedFormat;
    private CodedFrameInfo _stream;

    // Decoder state (under _lock).
    private bool _headerSeen;          // a header was parsed since open: the stream size is known
    private bool _awaitingCapture;     // SOURCE_CHANGE sent; nothing is decoded until CAPTURE is streamed on again
    private bool _lastPending;         // the next CAPTURE buffer goes back empty, flagged LAST
    private bool _lastEndsDrain;       // ...and ends a drain (EOS) rather than a resolution change
    private bool _draining;            // DECODER_CMD STOP: counting down the OUTPUT buffers queued before it
    private int _drainRemaining;
    private bool _stopped;             // the drain ended: nothing is decoded until START or a STREAMOFF
    private int _outputPending;        // OUTPUT buffers queued and not yet consumed (taken and given back still count)
    private bool _closed;

    // Work scheduling: _requested is set by whoever makes work possible, _running while the work item is queued or
    // runs; together they make sure the item runs after every request and never twice at once.
    private int _requested, _running;

    internal DecoderSession(V4l2DecoderDevice device, IMediaSessionHost host)
        : base(device.Controls, host)
    {
        _device = device;
        IDecoderCodec codec = device.Codec;
        _decoder = codec.OpenDecoder();
        _output = new V4l2BufferQueue(OutputType, host, new V4l2QueueOwnership(), timestampCopy: true, workArrived: Schedule);
        _capture = new V4l2BufferQueue(CaptureType, host, new V4l2QueueOwnership(), timestampCopy: true, workArrived: Schedule);
        _codedFormat = codec.CodedFormats[0];
        _decodedFormat = codec.DecodedFormats[0];
        (uint minW, uint minH, _, _) = codec.SizeLimits;
        _codedWidth = Math.Max(640u, minW);
        _codedHeight = Math.Max(480u, minH);
        _codedBufferSize = DefaultCodedBufferSize(_codedWidth, _codedHeight);
        _stream = new CodedFrameInfo(_codedWidth, _codedHeight);
    }

    // A coded frame is rarely larger than the raw 4:2:0 frame; an application may ask for more (S_FMT sizeimage).
    private static uint DefaultCodedBufferSize(uint width, uint height) =>
        Math.Clamp(width * height * 3 / 2, 64u << 10, MaxCodedBufferBytes);

    private uint Align(uint value) => (value + _device.Codec.Alignment - 1) & ~(_device.Codec.Alignment - 1);

    // ---- formats ----

    public override int EnumFormat(ref V4l2FmtDesc desc)
    {
        if (desc.Type == CaptureType)
        {
            return V4l2Formats.Enumerate(ref desc, _device.Codec.DecodedFormats);
        }
        IReadOnlyList<CodedFormat> coded = _device.Codec.CodedFormats;
        if (desc.Type != OutputType || desc.Index >= coded.Count)
        {
            return Errno.EINVAL;
        }
        CodedFormat f = coded[(int)desc.Index];
        desc = default;
        desc.PixelFormat = f.FourCc;
        // Every frame carries its own size, which may change from one frame to the next.
        desc.Flags = V4l2Const.FmtFlagCompressed | V4l2Const.FmtFlagDynResolution;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref desc.Description[0], f.Description);
        }
        return 0;
    }

    public override int GetFormat(ref V4l2Format format)
    {
        lock (_lock)
        {
            if (format.Type == OutputType)
            {
                DescribeCoded(ref format, _codedFormat, _codedWidth, _codedHeight, _codedBufferSize);
                return 0;
            }
            if (format.Type == CaptureType)
            {
                V4l2Formats.Describe(ref format, _decodedFormat, Align(_stream.Width), Align(_stream.Height));
                return 0;
            }
        }
        return Errno.EINVAL;
    }

    public override int TryFormat(ref V4l2Format format) => NegotiateFormat(ref format, apply: false);

    public override int SetFormat(ref V4l2Format format) => NegotiateFormat(ref format, apply: true);

    private int NegotiateFormat(ref V4l2Format format, bool apply)
    {
        if (format.Type == OutputType)
        {
            (uint fourcc, uint width, uint height) = V4l2Formats.Requested(format);
            CodedFormat coded = FindCoded(fourcc) ?? _device.Codec.CodedFormats[0];
            (uint minW, uint minH, uint maxW, uint maxH) = _device.Codec.SizeLimits;
            // Clamped to what the codec handles (0 too: a format always has a size; the stream's own replaces it at
            // the first header).
            width = Math.Clamp(width, minW, maxW);
            height = Math.Clamp(height, minH, maxH);
            uint requested = format.PixMp.NumPlanes >= 1 ? format.PixMp.PlaneFmt(0).SizeImage : 0;
            uint size = Math.Clamp(Math.Max(requested, DefaultCodedBufferSize(width, height)), 1, MaxCodedBufferBytes);
            if (apply)
            {
                lock (_lock)
                {
                    if (_output.HasBuffers || _output.IsStreaming)
                    {
                        return Errno.EBUSY;
                    }
                    (_codedFormat, _codedWidth, _codedHeight, _codedBufferSize) = (coded, width, height, size);
                    // Until a header says otherwise, the stream is as large as the application said (the spec's
                    // "CAPTURE format updated from the OUTPUT one").
                    if (!_headerSeen)
                    {
                        _stream = new CodedFrameInfo(width, height);
                    }
                }
            }
            DescribeCoded(ref format, coded, width, height, size);
            return 0;
        }
        if (format.Type == CaptureType)
        {
            // The size is the stream's; the application picks only the pixel format.
            (uint fourcc, _, _) = V4l2Formats.Requested(format);
            CaptureFormat decoded = V4l2Formats.FindOffered(_device.Codec.DecodedFormats, fourcc, CaptureType) ?? _device.Codec.DecodedFormats[0];
            lock (_lock)
            {
                if (apply)
                {
                    if (_capture.HasBuffers || _capture.IsStreaming)
                    {
                        return Errno.EBUSY;
                    }
                    _decodedFormat = decoded;
                }
                V4l2Formats.Describe(ref format, decoded, Align(_stream.Width), Align(_stream.Height));
            }
            return 0;
        }
        return Errno.EINVAL;
    }

    private CodedFormat? FindCoded(uint fourcc)
    {
        foreach (CodedFormat f in _device.Codec.CodedFormats)
        {
            if (f.FourCc == fourcc)
            {
                return f;
            }
        }
        return null;
    }

    // A coded format has one plane of sizeimage bytes and no line stride; JPEG colorimetry.
    private static void DescribeCoded(ref V4l2Format format, CodedFormat coded, uint width, uint height, uint size)
    {
        format = default;
        ref V4l2PixFormatMplane mp = ref format.PixMp;
        mp.Width = width;
        mp.Height = height;
        mp.PixelFormat = coded.FourCc;
        mp.Field = V4l2Const.FieldNone;
        mp.Colorspace = V4l2Const.ColorspaceJpeg;
        mp.NumPlanes = 1;
        mp.PlaneFmt(0).SizeImage = size;
        mp.PlaneFmt(0).BytesPerLine = 0;
    }

    public override int EnumFrameSizes(ref V4l2FrmSizeEnum sizes)
    {
        bool coded = FindCoded(sizes.PixelFormat) is not null;
        if (!coded && V4l2Formats.FindOffered(_device.Codec.DecodedFormats, sizes.PixelFormat, CaptureType) is null)
        {
            return Errno.EINVAL;
        }
        if (sizes.Index != 0)
        {
            return Errno.EINVAL;
        }
        (uint minW, uint minH, uint maxW, uint maxH) = _device.Codec.SizeLimits;
        uint step = coded ? 1 : _device.Codec.Alignment;
        sizes = default;
        sizes.Type = V4l2Const.FrmSizeTypeStepwise;
        sizes.StepwiseMinWidth = coded ? minW : Align(minW);
        sizes.StepwiseMaxWidth = coded ? maxW : Align(maxW);
        sizes.StepwiseStepWidth = step;
        sizes.StepwiseMinHeight = coded ? minH : Align(minH);
        sizes.StepwiseMaxHeight = coded ? maxH : Align(maxH);
        sizes.StepwiseStepHeight = step;
        return 0;
    }

    // ---- selection: the visible rectangle inside the aligned CAPTURE buffer ----

    public override int GetSelection(ref V4l2Selection selection)
    {
        if (selection.Type is not ((uint)V4l2BufferType.VideoCapture or CaptureType))
        {
            return Errno.EINVAL;
        }
        uint width, height;
        lock (_lock)
        {
            (width, height) = (_stream.Width, _stream.Height);
        }
        switch (selection.Target)
        {
            case V4l2Const.SelTgtCompose:
            case V4l2Const.SelTgtComposeDefault:
                break; // the visible picture
            case V4l2Const.SelTgtComposeBounds:
            case V4l2Const.SelTgtComposePadded:
                (width, height) = (Align(width), Align(height)); // the whole aligned buffer
                break;
            default:
                return Errno.EINVAL;
        }
        selection.Flags = 0;
        selection.Rect = new V4l2Rect { Left = 0, Top = 0, Width = width, Height = height };
        return 0;
    }

    // ---- buffers: each type to its queue ----

    private V4l2BufferQueue? QueueFor(uint type) => type == OutputType ? _output : type == CaptureType ? _capture : null;

    public override int RequestBuffers(ref V4l2RequestBuffers request)
    {
        V4l2BufferQueue? queue = QueueFor(request.Type);
        if (queue is null)
        {
            return Errno.EINVAL;
        }
        Span<uint> sizes = stackalloc uint[1];
        lock (_lock)
        {
            sizes[0] = BufferSizeLocked(queue);
            int status = queue.RequestBuffers(ref request, sizes);
            if (status == 0 && queue == _output)
            {
                _outputPending = 0;
            }
            return status;
        }
    }

    public override int CreateBuffers(ref V4l2CreateBuffers create)
    {
        V4l2BufferQueue? queue = QueueFor(create.Format.Type);
        if (queue is null)
        {
            return Errno.EINVAL;
        }
        Span<uint> sizes = stackalloc uint[1];
        lock (_lock)
        {
            sizes[0] = BufferSizeLocked(queue);
        }
        return queue.CreateBuffers(ref create, sizes);
    }

    private uint BufferSizeLocked(V4l2BufferQueue queue) => queue == _output
        ? _codedBufferSize
        : _decodedFormat.SizeImage(0, Align(_stream.Width), Align(_stream.Height));

    public override int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes) =>
        QueueFor(buffer.Type)?.QueryBuffer(ref buffer, planes) ?? Errno.EINVAL;

    public override int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) =>
        QueueFor(buffer.Type)?.PrepareBuffer(ref buffer, planes, pages) ?? Errno.EINVAL;

    public override int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages)
    {
        V4l2BufferQueue? queue = QueueFor(buffer.Type);
        if (queue is null)
        {
            return Errno.EINVAL;
        }
        if (queue == _output)
        {
            // Counted before the queue can hand the buffer to the work item, which counts it down.
            lock (_lock)
            {
                _outputPending++;
            }
        }
        int status = queue.QueueBuffer(ref buffer, planes, pages);
        if (status != 0 && queue == _output)
        {
            lock (_lock)
            {
                _outputPending--;
            }
        }
        return status;
    }

    public override int StreamOn(uint bufferType)
    {
        V4l2BufferQueue? queue = QueueFor(bufferType);
        if (queue is null)
        {
            return Errno.EINVAL;
        }
        int status = queue.StreamOn(bufferType);
        if (status == 0 && queue == _capture)
        {
            lock (_lock)
            {
                // The application has set CAPTURE up (again) for the stream as it now is.
                _awaitingCapture = false;
                _stopped = false;
            }
            Schedule();
        }
        return status;
    }

    public override int StreamOff(uint bufferType)
    {
        V4l2BufferQueue? queue = QueueFor(bufferType);
        if (queue is null)
        {
            return Errno.EINVAL;
        }
        int status = queue.StreamOff(bufferType);
        lock (_lock)
        {
            // Either STREAMOFF ends a drain; OUTPUT's returns every coded frame (a seek), CAPTURE's drops a LAST
            // still owed (the application is already setting CAPTURE up again).
            _draining = false;
            _stopped = false;
            _lastPending = false;
            if (queue == _output)
            {
                _outputPending = 0;
            }
        }
        Schedule();
        return status;
    }

    public override int FindMmapBuffer(uint memOffset, out MmapBuffer? buffer) =>
        _output.FindMmapBuffer(memOffset, out buffer) == 0 ? 0 : _capture.FindMmapBuffer(memOffset, out buffer);

    // ---- DECODER_CMD ----

    public override int PlainIoctl(V4l2IoctlCode code, IoctlDirection direction, Span<byte> payload)
    {
        if (code is not (V4l2IoctlCode.DecoderCmd or V4l2IoctlCode.TryDecoderCmd))
        {
            return Errno.ENOTTY;
        }
        uint cmd = BinaryPrimitives.ReadUInt32LittleEndian(payload);
        if (cmd is not (V4l2Const.DecCmdStart or V4l2Const.DecCmdStop))
        {
            return Errno.EINVAL;
        }
        // As v4l2-mem2mem's try_decoder_cmd: no flags, no stop pts, normal speed and no start format are honoured,
        // and the answer says so.
        payload[DecoderCmdFlagsOffset..].Clear();
        if (code == V4l2IoctlCode.TryDecoderCmd)
        {
            return 0;
        }
        return cmd == V4l2Const.DecCmdStop ? Stop() : Start();
    }

    private int Stop()
    {
        lock (_lock)
        {
            // With either queue not streaming there is nothing to drain: the command has no effect (as vicodec).
            if (!_output.IsStreaming || !_capture.IsStreaming || _stopped)
            {
                return 0;
            }
            if (_draining || (_lastPending && _lastEndsDrain))
            {
                return Errno.EBUSY;
            }
            _drainRemaining = _outputPending;
            if (_drainRemaining == 0)
            {
                // Nothing queued: the next CAPTURE buffer goes back empty, flagged LAST.
                _lastPending = true;
                _lastEndsDrain = true;
            }
            else
            {
                _draining = true;
            }
        }
        Schedule();
        return 0;
    }

    private int Start()
    {
        lock (_lock)
        {
            if (_draining)
            {
                return Errno.EBUSY;
            }
            _stopped = false;
        }
        Schedule();
        return 0;
    }

    public override void Dispose()
    {
        lock (_lock)
        {
            _closed = true;
        }
        _output.Close();
        _capture.Close();
        CloseEvents();
        _decoder.Dispose();
    }
}
