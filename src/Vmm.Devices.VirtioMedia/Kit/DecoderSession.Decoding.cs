using System.Buffers;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

// The work item: decodes this session's frames one at a time, on the thread pool, and runs the source-change and
// drain sequences; the ioctls are in DecoderSession.cs.
public sealed partial class DecoderSession
{
    // ---- decoding, on this session's work item ----

    /// <summary>Asks for the work item to run (more buffers, a command); never blocks.</summary>
    private void Schedule()
    {
        Volatile.Write(ref _requested, 1);
        if (Interlocked.CompareExchange(ref _running, 1, 0) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        while (true)
        {
            Volatile.Write(ref _requested, 0);
            try
            {
                while (Step())
                {
                }
            }
            catch (Exception)
            {
                // A decoder bug costs this session only (an ERROR event), never the VMM: this runs on a pool thread.
                // (A session closed meanwhile, whose decoder went away under a frame, needs no event.)
                bool wasClosed;
                lock (_lock)
                {
                    wasClosed = _closed;
                    _closed = true;
                }
                if (!wasClosed)
                {
                    Host.SendError(Errno.EIO);
                }
            }
            Volatile.Write(ref _running, 0);
            // A request that came after Step found nothing to do, while _running was still set, runs the loop again.
            if (Volatile.Read(ref _requested) == 0 || Interlocked.CompareExchange(ref _running, 1, 0) != 0)
            {
                return;
            }
        }
    }

    // One unit of work: a LAST buffer owed, or one coded frame. False when there is nothing to do now.
    private bool Step()
    {
        V4l2FillTicket input;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }
            if (_lastPending)
            {
                return CompleteLastLocked();
            }
            if (_stopped || _awaitingCapture || !_output.TryTakeNext(out input))
            {
                return false;
            }
        }
        // A coded frame in SHARED_PAGES is gathered into memory rented for the frame (MMAP ones are read in place):
        // held per session it would let a guest make every session keep its largest frame.
        byte[]? gathered = null;
        try
        {
            PlaneSource source = _output.Source(input, 0);
            ReadOnlySpan<byte> coded = source.Contiguous;
            if (!source.IsContiguous)
            {
                gathered = ArrayPool<byte>.Shared.Rent((int)Math.Min(source.Length, MaxCodedBufferBytes));
                coded = gathered.AsSpan(0, source.CopyTo(gathered));
                Host.CountCopiedBytes(coded.Length);
            }
            return Decode(input, coded);
        }
        finally
        {
            if (gathered is not null)
            {
                ArrayPool<byte>.Shared.Return(gathered);
            }
            _output.EndFill(input);
        }
    }

    // Hands the next CAPTURE buffer back empty and flagged LAST, then says why: EOS after a drain, SOURCE_CHANGE
    // after the last frame of the old resolution.
    private bool CompleteLastLocked()
    {
        if (!_capture.TryTakeNext(out V4l2FillTicket last))
        {
            return false;
        }
        try
        {
            Span<uint> empty = stackalloc uint[1];
            _capture.Complete(last, empty, V4l2Const.BufFlagLast, default);
        }
        finally
        {
            _capture.EndFill(last);
        }
        _lastPending = false;
        if (_lastEndsDrain)
        {
            _stopped = true;
            Events.SendEndOfStream();
        }
        else
        {
            Events.SendSourceChange();
        }
        return true;
    }

    private bool Decode(in V4l2FillTicket input, ReadOnlySpan<byte> coded)
    {
        V4l2BufferMetadata metadata = V4l2BufferQueue.Metadata(input);
        (uint minW, uint minH, uint maxW, uint maxH) = _device.Codec.SizeLimits;
        bool parsed = _decoder.TryReadHeader(coded, out CodedFrameInfo info)
            && info.Width >= minW && info.Height >= minH && info.Width <= maxW && info.Height <= maxH;

        V4l2FillTicket output;
        CaptureFormat format;
        uint width, height;
        lock (_lock)
        {
            if (_closed)
            {
                return false;
            }
            if (!parsed)
            {
                // Not a frame this codec can decode. It still costs one CAPTURE buffer, returned empty and flagged with
                // an error, as vb2 codecs do: an application that waits for one CAPTURE buffer per OUTPUT buffer
                // (v4l2-compliance's streaming tests feed such data) never hangs, and the size stays as it was.
                return RejectLocked(input, metadata);
            }
            if (!SameStreamLocked(info))
            {
                // Decoding resumes with this frame once CAPTURE is set up for it (after the LAST buffer owed, if any).
                _output.ReturnToQueue(input);
                return _lastPending;
            }
            if (!_capture.TryTakeNext(out output))
            {
                _output.ReturnToQueue(input);
                return false;
            }
            (format, width, height) = (_decodedFormat, Align(_stream.Width), Align(_stream.Height));
        }

        bool decoded = false;
        uint size = format.SizeImage(0, width, height);
        try
        {
            if (V4l2BufferQueue.HasMemory(output))
            {
                var frame = new CaptureFrame
                {
                    Format = format,
                    Width = width,
                    Height = height,
                    Sequence = output.Sequence,
                    Plane0 = _capture.Destination(output, 0),
                };
                decoded = frame.Plane0.Length >= size && _decoder.Decode(coded, info, ref frame);
                if (decoded && !output.IsMmap)
                {
                    // A SHARED_PAGES buffer is scattered guest pages: the frame went through the decoder's scratch.
                    Host.CountCopiedBytes(size);
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                CompletePairLocked(input, outputFlags: 0, output, decoded ? size : 0, metadata);
            }
            _capture.EndFill(output);
        }
        return true;
    }

    // Completes an OUTPUT buffer and the CAPTURE buffer made from it, which carries its metadata: with the decoded
    // bytes, or empty and flagged ERROR (<paramref name="captureBytes"/> 0). The CAPTURE buffer of the last OUTPUT
    // buffer queued before a STOP is flagged LAST and ends the drain with EOS.
    private void CompletePairLocked(in V4l2FillTicket input, uint outputFlags, in V4l2FillTicket output, uint captureBytes,
        in V4l2BufferMetadata metadata)
    {
        Span<uint> used = stackalloc uint[1];
        used[0] = captureBytes;
        bool last = _output.Complete(input, default, outputFlags, metadata) && CountDrainLocked();
        uint flags = (captureBytes == 0 ? V4l2Const.BufFlagError : 0) | (last ? V4l2Const.BufFlagLast : 0);
        _capture.Complete(output, used, flags, metadata);
        if (last)
        {
            _stopped = true;
            Events.SendEndOfStream();
        }
    }

    // Whether a frame with header <paramref name="info"/> can be decoded into the CAPTURE buffers as they are. A new
    // size is a source change: the stream takes it, and decoding waits for the application
    // to set CAPTURE up again, after a LAST buffer when CAPTURE was streaming.
    private bool SameStreamLocked(in CodedFrameInfo info)
    {
        bool first = !_headerSeen;
        _headerSeen = true;
        bool fits = _capture.IsStreaming && _capture.PlaneLength(0) >= _decodedFormat.SizeImage(0, Align(info.Width), Align(info.Height));
        if (info == _stream && fits)
        {
            if (first)
            {
                // Initialization: the application that set CAPTURE up from its own knowledge of the stream still
                // hears about it, and decoding goes on.
                Events.SendSourceChange();
            }
            return true;
        }
        _stream = info;
        _awaitingCapture = true;
        if (_capture.IsStreaming)
        {
            _lastPending = true;
            _lastEndsDrain = false;
        }
        else
        {
            Events.SendSourceChange();
        }
        return false;
    }

    // Completes an OUTPUT buffer that holds no frame, with an empty CAPTURE buffer flagged ERROR (and LAST when it
    // ends a drain); without a CAPTURE buffer queued the OUTPUT one waits at the head of its queue.
    private bool RejectLocked(in V4l2FillTicket input, in V4l2BufferMetadata metadata)
    {
        if (!_capture.TryTakeNext(out V4l2FillTicket output))
        {
            _output.ReturnToQueue(input);
            return false;
        }
        try
        {
            CompletePairLocked(input, V4l2Const.BufFlagError, output, captureBytes: 0, metadata);
        }
        finally
        {
            _capture.EndFill(output);
        }
        return true;
    }

    // An OUTPUT buffer was consumed (completed): one fewer pending, and during a drain true when it was the last one
    // queued before STOP (its CAPTURE buffer is then flagged LAST).
    private bool CountDrainLocked()
    {
        _outputPending = Math.Max(0, _outputPending - 1);
        if (!_draining || --_drainRemaining > 0)
        {
            return false;
        }
        _draining = false;
        return true;
    }
}
