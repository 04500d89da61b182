using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Ioctls;

/// <summary>
/// Decodes the payload of a VIRTIO_MEDIA_CMD_IOCTL into typed V4L2 structures, calls the matching
/// <see cref="IoctlHandler"/> method and encodes the answer. Input is the device-readable stream after the 16-byte
/// command header, output the device-writable stream after the 8-byte response header; both are host copies (the
/// device gathers the chain first), so the guest cannot change a value between its check and its use.
/// Rules: every input is read completely before any output is written (the Linux driver points the input and
/// output of WR ioctls at the same memory); a payload shorter than its structure is EINVAL; unknown codes are
/// ENOTTY; pointer fields, and the identity fields of an answer, go back to the guest exactly as it sent them.
/// Allocation-free.
/// </summary>
public static class IoctlDispatcher
{
    /// <summary>Largest number of controls accepted in one G/S/TRY_EXT_CTRLS (the kernel's V4L2_CID_MAX_CTRLS).</summary>
    public const int MaxExtControls = 1024;

    /// <summary>Dispatches one ioctl. Returns 0 or a positive errno; <paramref name="written"/> is the number of
    /// output payload bytes produced (normally 0 on error; EXT_CTRLS errors still carry their payload).</summary>
    public static int Dispatch(IoctlHandler handler, uint code, ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        written = 0;
        switch ((V4l2IoctlCode)code)
        {
            case V4l2IoctlCode.EnumFmt:
                return ReadWrite<V4l2FmtDesc>(input, output, ref written, static (h, ref v) => h.EnumFormat(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.GFmt:
                return ReadWrite<V4l2Format>(input, output, ref written, static (h, ref v) => h.GetFormat(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.SFmt:
                return ReadWrite<V4l2Format>(input, output, ref written, static (h, ref v) => h.SetFormat(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.TryFmt:
                return ReadWrite<V4l2Format>(input, output, ref written, static (h, ref v) => h.TryFormat(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.EnumFrameSizes:
                return ReadWrite<V4l2FrmSizeEnum>(input, output, ref written, static (h, ref v) => h.EnumFrameSizes(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.EnumFrameIntervals:
                return ReadWrite<V4l2FrmIvalEnum>(input, output, ref written, static (h, ref v) => h.EnumFrameIntervals(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.GParm:
                return ReadWrite<V4l2StreamParm>(input, output, ref written, static (h, ref v) => h.GetParm(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.SParm:
                return ReadWrite<V4l2StreamParm>(input, output, ref written, static (h, ref v) => h.SetParm(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.ReqBufs:
                return ReadWrite<V4l2RequestBuffers>(input, output, ref written, static (h, ref v) => h.RequestBuffers(ref v), handler);
            case V4l2IoctlCode.CreateBufs:
                return ReadWrite<V4l2CreateBuffers>(input, output, ref written, static (h, ref v) => h.CreateBuffers(ref v), handler);
            case V4l2IoctlCode.QueryBuf:
            case V4l2IoctlCode.QBuf:
            case V4l2IoctlCode.PrepareBuf:
                return BufferIoctl(handler, (V4l2IoctlCode)code, input, output, out written);
            case V4l2IoctlCode.ExpBuf:
                return ReadWrite<V4l2ExportBuffer>(input, output, ref written, static (h, ref v) => h.ExportBuffer(ref v), handler);
            case V4l2IoctlCode.StreamOn:
                return TryReadInput(input, out uint onType) ? handler.StreamOn(onType) : Errno.EINVAL;
            case V4l2IoctlCode.StreamOff:
                return TryReadInput(input, out uint offType) ? handler.StreamOff(offType) : Errno.EINVAL;
            case V4l2IoctlCode.EnumInput:
                return ReadWrite<V4l2Input>(input, output, ref written, static (h, ref v) => h.EnumInput(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.GInput:
                // The driver sends 4 input bytes although videodev2.h says _IOR; they carry nothing and are ignored.
                return WriteOnly(output, ref written, handler.GetInput(out uint current), current);
            case V4l2IoctlCode.SInput:
                return ReadWrite<uint>(input, output, ref written, static (h, ref v) => h.SetInput(ref v), handler);
            case V4l2IoctlCode.QueryCtrl:
                return ReadWrite<V4l2QueryCtrl>(input, output, ref written, static (h, ref v) => h.QueryControl(ref v), handler);
            case V4l2IoctlCode.QueryExtCtrl:
                return ReadWrite<V4l2QueryExtCtrl>(input, output, ref written, static (h, ref v) => h.QueryExtControl(ref v), handler);
            case V4l2IoctlCode.QueryMenu:
                return ReadWrite<V4l2QueryMenu>(input, output, ref written, static (h, ref v) => h.QueryMenu(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.GCtrl:
                return ReadWrite<V4l2Control>(input, output, ref written, static (h, ref v) => h.GetControl(ref v), handler);
            case V4l2IoctlCode.SCtrl:
                return ReadWrite<V4l2Control>(input, output, ref written, static (h, ref v) => h.SetControl(ref v), handler);
            case V4l2IoctlCode.GExtCtrls:
            case V4l2IoctlCode.SExtCtrls:
            case V4l2IoctlCode.TryExtCtrls:
                return ExtControls(handler, (V4l2IoctlCode)code, input, output, out written);
            case V4l2IoctlCode.GSelection:
                return ReadWrite<V4l2Selection>(input, output, ref written, static (h, ref v) => h.GetSelection(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.SSelection:
                return ReadWrite<V4l2Selection>(input, output, ref written, static (h, ref v) => h.SetSelection(ref v), handler, IdentityFields.Keep);
            case V4l2IoctlCode.SubscribeEvent:
                return TryReadInput(input, out V4l2EventSubscription sub) ? handler.SubscribeEvent(sub) : Errno.EINVAL;
            case V4l2IoctlCode.UnsubscribeEvent:
                return TryReadInput(input, out V4l2EventSubscription unsub) ? handler.UnsubscribeEvent(unsub) : Errno.EINVAL;
            default:
                if (PlainIoctls.TryGet((V4l2IoctlCode)code, out PlainIoctl plain))
                {
                    return Plain(handler, plain, input, output, out written);
                }
                // QUERYCAP, DQBUF, DQEVENT, G/S_JPEGCOMP, LOG_STATUS must be ENOTTY per the spec; so is everything
                // this device does not implement.
                return Errno.ENOTTY;
        }
    }

    private static int Plain(IoctlHandler handler, PlainIoctl plain, ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        written = 0;
        Span<byte> payload = stackalloc byte[PlainIoctls.MaxSize];
        payload = payload[..plain.Size];
        payload.Clear();
        bool sendsInput = (plain.Sent & IoctlDirection.Write) != 0, returnsOutput = (plain.Sent & IoctlDirection.Read) != 0;
        if (sendsInput)
        {
            if (input.Length < plain.Size)
            {
                return Errno.EINVAL;
            }
            input[..plain.Size].CopyTo(payload);
        }
        if (returnsOutput && output.Length < plain.Size)
        {
            return Errno.EINVAL;
        }
        int status = handler.PlainIoctl(plain.Code, plain.Kernel, payload);
        if (status == 0 && returnsOutput)
        {
            payload.CopyTo(output);
            written = plain.Size;
        }
        return status;
    }

    private delegate int RefHandler<T>(IoctlHandler handler, ref T value);

    // Puts the fields that name what was asked (index, type, pixel format, size, id) back into a successful answer.
    private delegate void KeepIdentity<T>(ref T answer, in T request);

    private static int ReadWrite<T>(ReadOnlySpan<byte> input, Span<byte> output, ref int written, RefHandler<T> call, IoctlHandler handler,
        KeepIdentity<T>? keep = null)
        where T : unmanaged
    {
        if (!TryReadInput(input, out T value))
        {
            return Errno.EINVAL;
        }
        if (output.Length < Unsafe.SizeOf<T>())
        {
            return Errno.EINVAL;
        }
        T request = value;
        int status = call(handler, ref value);
        if (status != 0)
        {
            return status;
        }
        keep?.Invoke(ref value, in request);
        MemoryMarshal.Write(output, in value);
        written = Unsafe.SizeOf<T>();
        return 0;
    }

    private static int WriteOnly<T>(Span<byte> output, ref int written, int status, T value) where T : unmanaged
    {
        if (status != 0)
        {
            return status;
        }
        if (output.Length < Unsafe.SizeOf<T>())
        {
            return Errno.EINVAL;
        }
        MemoryMarshal.Write(output, in value);
        written = Unsafe.SizeOf<T>();
        return 0;
    }

    private static bool TryReadInput<T>(ReadOnlySpan<byte> input, out T value) where T : unmanaged =>
        MemoryMarshal.TryRead(input, out value);

    private static bool IsMultiPlanar(uint type) =>
        type is (uint)V4l2BufferType.VideoCaptureMplane or (uint)V4l2BufferType.VideoOutputMplane;

    private static int BufferIoctl(IoctlHandler handler, V4l2IoctlCode code, ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        written = 0;
        if (!TryReadInput(input, out V4l2Buffer buffer))
        {
            return Errno.EINVAL;
        }
        ulong guestM = buffer.M;
        bool mplane = IsMultiPlanar(buffer.Type);
        int planeCount = 0;
        if (mplane)
        {
            if (buffer.Length > V4l2Const.VideoMaxPlanes)
            {
                return Errno.EINVAL;
            }
            planeCount = (int)buffer.Length;
        }
        int offset = Unsafe.SizeOf<V4l2Buffer>();
        int planeBytes = planeCount * Unsafe.SizeOf<V4l2Plane>();
        if (input.Length - offset < planeBytes)
        {
            return Errno.EINVAL;
        }
        Span<V4l2Plane> planes = stackalloc V4l2Plane[V4l2Const.VideoMaxPlanes];
        planes = planes[..planeCount];
        MemoryMarshal.Cast<byte, V4l2Plane>(input.Slice(offset, planeBytes)).CopyTo(planes);
        offset += planeBytes;

        Span<ulong> guestPlaneM = stackalloc ulong[V4l2Const.VideoMaxPlanes];
        for (int i = 0; i < planeCount; i++)
        {
            guestPlaneM[i] = planes[i].M;
        }

        // SHARED_PAGES: SG lists follow, one per plane (or for the single-planar buffer) whose length is non-zero.
        Span<int> sgStart = stackalloc int[V4l2Const.VideoMaxPlanes];
        Span<int> sgCount = stackalloc int[V4l2Const.VideoMaxPlanes];
        int sgPlanes = 0;
        ReadOnlySpan<SgEntry> entries = default;
        if (code != V4l2IoctlCode.QueryBuf && buffer.Memory == (uint)V4l2Memory.UserPtr)
        {
            ReadOnlySpan<byte> sgBytes = input[offset..];
            entries = MemoryMarshal.Cast<byte, SgEntry>(sgBytes[..(sgBytes.Length / VirtioMediaWire.SgEntrySize * VirtioMediaWire.SgEntrySize)]);
            int next = 0;
            sgPlanes = mplane ? planeCount : 1;
            for (int p = 0; p < sgPlanes; p++)
            {
                uint planeLength = mplane ? planes[p].Length : buffer.Length;
                sgStart[p] = next;
                ulong sum = 0;
                while (sum < planeLength)
                {
                    if (next >= entries.Length)
                    {
                        return Errno.EINVAL;
                    }
                    uint segment = entries[next].Length;
                    if (segment == 0)
                    {
                        return Errno.EINVAL;
                    }
                    sum += segment; // ulong sum of uint values: cannot overflow within 2^32 entries.
                    next++;
                }
                if (sum != planeLength)
                {
                    return Errno.EINVAL;
                }
                sgCount[p] = next - sgStart[p];
            }
        }
        var pages = new SharedPagesLists(entries, sgStart[..sgPlanes], sgCount[..sgPlanes]);

        int needed = Unsafe.SizeOf<V4l2Buffer>() + planeBytes;
        if (output.Length < needed)
        {
            return Errno.EINVAL;
        }
        uint index = buffer.Index, type = buffer.Type, memory = buffer.Memory, length = buffer.Length;
        int status = code switch
        {
            V4l2IoctlCode.QueryBuf => handler.QueryBuffer(ref buffer, planes),
            V4l2IoctlCode.QBuf => handler.QueueBuffer(ref buffer, planes, pages),
            _ => handler.PrepareBuffer(ref buffer, planes, pages),
        };
        if (status != 0)
        {
            return status;
        }
        // Identity fields and the guest's pointers go back unchanged: the handler cannot redirect the guest or leak
        // a host address through them.
        buffer.Index = index;
        buffer.Type = type;
        if (mplane)
        {
            // Length is the number of planes the handler filled; it can never exceed the room the guest gave.
            if (buffer.Length > length)
            {
                return Errno.EINVAL;
            }
            buffer.M = guestM;
        }
        else if (memory == (uint)V4l2Memory.UserPtr && code != V4l2IoctlCode.QueryBuf)
        {
            buffer.M = guestM;
        }
        if (memory == (uint)V4l2Memory.UserPtr && code != V4l2IoctlCode.QueryBuf)
        {
            for (int i = 0; i < planeCount; i++)
            {
                planes[i].M = guestPlaneM[i];
            }
        }
        MemoryMarshal.Write(output, in buffer);
        MemoryMarshal.AsBytes(planes).CopyTo(output[Unsafe.SizeOf<V4l2Buffer>()..]);
        written = needed;
        return 0;
    }

    private static int ExtControls(IoctlHandler handler, V4l2IoctlCode code, ReadOnlySpan<byte> input, Span<byte> output, out int written)
    {
        written = 0;
        if (!TryReadInput(input, out V4l2ExtControls header))
        {
            return Errno.EINVAL;
        }
        if (header.Count > MaxExtControls)
        {
            return Errno.EINVAL;
        }
        int headerSize = Unsafe.SizeOf<V4l2ExtControls>();
        int arrayBytes = (int)header.Count * Unsafe.SizeOf<V4l2ExtControl>();
        if (input.Length - headerSize < arrayBytes || output.Length < headerSize + arrayBytes)
        {
            return Errno.EINVAL;
        }
        ulong guestPointer = header.Controls;
        uint count = header.Count;

        // Copy the array out of the input before anything is written. Up to 64 controls live on the stack; larger
        // requests (at most the payload's bound) borrow a pooled array, so no request allocates.
        V4l2ExtControl[]? rented = count <= 64 ? null : ArrayPool<V4l2ExtControl>.Shared.Rent((int)count);
        int[]? rentedIndex = null;
        try
        {
            Span<V4l2ExtControl> controls = rented is null ? stackalloc V4l2ExtControl[64] : rented;
            controls = controls[..(int)count];
            MemoryMarshal.Cast<byte, V4l2ExtControl>(input.Slice(headerSize, arrayBytes)).CopyTo(controls);

            // Pointer controls (size > 0) are followed by their scatter lists, in control order.
            if (rented is not null)
            {
                rentedIndex = ArrayPool<int>.Shared.Rent(2 * (int)count);
            }
            Span<int> index = rentedIndex is null ? stackalloc int[128] : rentedIndex;
            Span<int> sgStart = index[..(int)count];
            Span<int> sgCount = index.Slice((int)count, (int)count);
            ReadOnlySpan<byte> sgBytes = input[(headerSize + arrayBytes)..];
            ReadOnlySpan<SgEntry> entries = MemoryMarshal.Cast<byte, SgEntry>(sgBytes[..(sgBytes.Length / VirtioMediaWire.SgEntrySize * VirtioMediaWire.SgEntrySize)]);
            int next = 0;
            for (int c = 0; c < (int)count; c++)
            {
                sgStart[c] = next;
                ulong sum = 0;
                while (sum < controls[c].Size)
                {
                    if (next >= entries.Length || entries[next].Length == 0)
                    {
                        return Errno.EINVAL;
                    }
                    sum += entries[next].Length;
                    next++;
                }
                if (sum != controls[c].Size)
                {
                    return Errno.EINVAL;
                }
                sgCount[c] = next - sgStart[c];
            }
            var payloads = new SharedPagesLists(entries, sgStart, sgCount);

            int status = handler.ExtControls(code, ref header, controls, payloads);
            header.Controls = guestPointer;
            header.Count = count;
            MemoryMarshal.Write(output, in header);
            MemoryMarshal.AsBytes(controls).CopyTo(output[headerSize..]);
            written = headerSize + arrayBytes;
            return status;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<V4l2ExtControl>.Shared.Return(rented);
            }
            if (rentedIndex is not null)
            {
                ArrayPool<int>.Shared.Return(rentedIndex);
            }
        }
    }
}

/// <summary>
/// The identity fields of each enumerate/get/set structure: what the guest asked about, which V4L2 answers with the
/// same values. The dispatcher restores them once after a successful handler, so a handler may answer from a cleared
/// structure and can never make the guest believe it answered another index, type or control.
/// </summary>
internal static class IdentityFields
{
    public static void Keep(ref V4l2FmtDesc answer, in V4l2FmtDesc request)
    {
        answer.Index = request.Index;
        answer.Type = request.Type;
    }

    public static void Keep(ref V4l2Format answer, in V4l2Format request) => answer.Type = request.Type;

    public static void Keep(ref V4l2FrmSizeEnum answer, in V4l2FrmSizeEnum request)
    {
        answer.Index = request.Index;
        answer.PixelFormat = request.PixelFormat;
    }

    public static void Keep(ref V4l2FrmIvalEnum answer, in V4l2FrmIvalEnum request)
    {
        answer.Index = request.Index;
        answer.PixelFormat = request.PixelFormat;
        answer.Width = request.Width;
        answer.Height = request.Height;
    }

    public static void Keep(ref V4l2StreamParm answer, in V4l2StreamParm request) => answer.Type = request.Type;

    public static void Keep(ref V4l2Input answer, in V4l2Input request) => answer.Index = request.Index;

    public static void Keep(ref V4l2QueryMenu answer, in V4l2QueryMenu request)
    {
        answer.Id = request.Id;
        answer.Index = request.Index;
    }

    public static void Keep(ref V4l2Selection answer, in V4l2Selection request)
    {
        answer.Type = request.Type;
        answer.Target = request.Target;
    }
}
