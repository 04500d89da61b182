using System.Runtime.InteropServices;
using System.Text;

namespace Vmm.Devices.VirtioMedia.V4l2;

// The V4L2 UAPI structures in their 64-bit (LP64, little-endian) layout, which is the virtio-media wire format.
// Every struct uses an explicit layout so that sizes and offsets are exactly the kernel's; the test project pins
// each of them against the values printed by offsetof/sizeof probes of videodev2.h. Pointer fields are kept as
// ulong and are never dereferenced.

/// <summary><c>struct v4l2_fract</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 8)]
public struct V4l2Fract
{
    public uint Numerator;
    public uint Denominator;

    public V4l2Fract(uint numerator, uint denominator)
    {
        Numerator = numerator;
        Denominator = denominator;
    }
}

/// <summary><c>struct v4l2_rect</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct V4l2Rect
{
    public int Left;
    public int Top;
    public uint Width;
    public uint Height;
}

/// <summary><c>struct v4l2_pix_format</c> (48 bytes), the single-planar format.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
public struct V4l2PixFormat
{
    [FieldOffset(0)] public uint Width;
    [FieldOffset(4)] public uint Height;
    [FieldOffset(8)] public uint PixelFormat;
    [FieldOffset(12)] public uint Field;
    [FieldOffset(16)] public uint BytesPerLine;
    [FieldOffset(20)] public uint SizeImage;
    [FieldOffset(24)] public uint Colorspace;
    [FieldOffset(28)] public uint Priv;
    [FieldOffset(32)] public uint Flags;
    [FieldOffset(36)] public uint YcbcrEnc;
    [FieldOffset(40)] public uint Quantization;
    [FieldOffset(44)] public uint XferFunc;
}

/// <summary><c>struct v4l2_plane_pix_format</c> (20 bytes, packed).</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
public struct V4l2PlanePixFormat
{
    [FieldOffset(0)] public uint SizeImage;
    [FieldOffset(4)] public uint BytesPerLine;
}

/// <summary><c>struct v4l2_pix_format_mplane</c> (192 bytes, packed), the multi-planar format.</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
public unsafe struct V4l2PixFormatMplane
{
    [FieldOffset(0)] public uint Width;
    [FieldOffset(4)] public uint Height;
    [FieldOffset(8)] public uint PixelFormat;
    [FieldOffset(12)] public uint Field;
    [FieldOffset(16)] public uint Colorspace;
    [FieldOffset(20)] public fixed byte PlaneFmtBytes[160];
    [FieldOffset(180)] public byte NumPlanes;
    [FieldOffset(181)] public byte Flags;
    [FieldOffset(182)] public byte YcbcrEnc;
    [FieldOffset(183)] public byte Quantization;
    [FieldOffset(184)] public byte XferFunc;

    /// <summary>Plane format <paramref name="index"/> (0..7).</summary>
    public ref V4l2PlanePixFormat PlaneFmt(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)V4l2Const.VideoMaxPlanes, nameof(index));
        return ref MemoryMarshal.AsRef<V4l2PlanePixFormat>(
            MemoryMarshal.CreateSpan(ref PlaneFmtBytes[0], 160).Slice(index * 20, 20));
    }
}

/// <summary><c>struct v4l2_format</c> (208 bytes, 8-aligned): type + a 200-byte union at offset 8.</summary>
[StructLayout(LayoutKind.Explicit, Size = 208)]
public struct V4l2Format
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(8)] public V4l2PixFormat Pix;
    [FieldOffset(8)] public V4l2PixFormatMplane PixMp;
}

/// <summary><c>struct v4l2_fmtdesc</c> (64 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public unsafe struct V4l2FmtDesc
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public fixed byte Description[32];
    [FieldOffset(44)] public uint PixelFormat;
    [FieldOffset(48)] public uint MbusCode;
    [FieldOffset(52)] public fixed uint Reserved[3];
}

/// <summary><c>struct v4l2_requestbuffers</c> (20 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
public struct V4l2RequestBuffers
{
    [FieldOffset(0)] public uint Count;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint Memory;
    [FieldOffset(12)] public uint Capabilities;
    [FieldOffset(16)] public byte Flags;
}

/// <summary><c>struct v4l2_timecode</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct V4l2Timecode
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public byte Frames;
    [FieldOffset(9)] public byte Seconds;
    [FieldOffset(10)] public byte Minutes;
    [FieldOffset(11)] public byte Hours;
    [FieldOffset(12)] public uint UserBits;
}

/// <summary><c>struct v4l2_buffer</c> (88 bytes, 8-aligned). <see cref="M"/> is the union
/// offset / userptr / planes pointer / fd.</summary>
[StructLayout(LayoutKind.Explicit, Size = 88)]
public struct V4l2Buffer
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint BytesUsed;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public uint Field;
    [FieldOffset(24)] public long TimestampSec;
    [FieldOffset(32)] public long TimestampUsec;
    [FieldOffset(40)] public V4l2Timecode Timecode;
    [FieldOffset(56)] public uint Sequence;
    [FieldOffset(60)] public uint Memory;
    [FieldOffset(64)] public ulong M;
    [FieldOffset(72)] public uint Length;
    [FieldOffset(76)] public uint Reserved2;
    [FieldOffset(80)] public uint RequestFd;
}

/// <summary><c>struct v4l2_plane</c> (64 bytes, 8-aligned). <see cref="M"/> is mem_offset / userptr / fd.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct V4l2Plane
{
    [FieldOffset(0)] public uint BytesUsed;
    [FieldOffset(4)] public uint Length;
    [FieldOffset(8)] public ulong M;
    [FieldOffset(16)] public uint DataOffset;
}

/// <summary><c>struct v4l2_create_buffers</c> (256 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
public struct V4l2CreateBuffers
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public uint Count;
    [FieldOffset(8)] public uint Memory;
    [FieldOffset(16)] public V4l2Format Format;
    [FieldOffset(224)] public uint Capabilities;
    [FieldOffset(228)] public uint Flags;
    [FieldOffset(232)] public uint MaxNumBuffers;
}

/// <summary><c>struct v4l2_frmsizeenum</c> (44 bytes); discrete view only.</summary>
[StructLayout(LayoutKind.Explicit, Size = 44)]
public struct V4l2FrmSizeEnum
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public uint PixelFormat;
    [FieldOffset(8)] public uint Type;
    [FieldOffset(12)] public uint Width;
    [FieldOffset(16)] public uint Height;

    // The stepwise view of the union (type FRMSIZE_TYPE_STEPWISE or CONTINUOUS).
    [FieldOffset(12)] public uint StepwiseMinWidth;
    [FieldOffset(16)] public uint StepwiseMaxWidth;
    [FieldOffset(20)] public uint StepwiseStepWidth;
    [FieldOffset(24)] public uint StepwiseMinHeight;
    [FieldOffset(28)] public uint StepwiseMaxHeight;
    [FieldOffset(32)] public uint StepwiseStepHeight;
}

/// <summary><c>struct v4l2_frmivalenum</c> (52 bytes); discrete view only.</summary>
[StructLayout(LayoutKind.Explicit, Size = 52)]
public struct V4l2FrmIvalEnum
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public uint PixelFormat;
    [FieldOffset(8)] public uint Width;
    [FieldOffset(12)] public uint Height;
    [FieldOffset(16)] public uint Type;
    [FieldOffset(20)] public V4l2Fract Discrete;
}

/// <summary><c>struct v4l2_streamparm</c> (204 bytes, 4-aligned); capture view of the union.</summary>
[StructLayout(LayoutKind.Explicit, Size = 204)]
public struct V4l2StreamParm
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Capability;
    [FieldOffset(8)] public uint CaptureMode;
    [FieldOffset(12)] public V4l2Fract TimePerFrame;
    [FieldOffset(20)] public uint ExtendedMode;
    [FieldOffset(24)] public uint ReadBuffers;
}

/// <summary><c>struct v4l2_input</c> (80 bytes, 8-aligned).</summary>
[StructLayout(LayoutKind.Explicit, Size = 80)]
public unsafe struct V4l2Input
{
    [FieldOffset(0)] public uint Index;
    [FieldOffset(4)] public fixed byte Name[32];
    [FieldOffset(36)] public uint Type;
    [FieldOffset(40)] public uint AudioSet;
    [FieldOffset(44)] public uint Tuner;
    [FieldOffset(48)] public ulong Std;
    [FieldOffset(56)] public uint Status;
    [FieldOffset(60)] public uint Capabilities;
}

/// <summary><c>struct v4l2_queryctrl</c> (68 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 68)]
public unsafe struct V4l2QueryCtrl
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public fixed byte Name[32];
    [FieldOffset(40)] public int Minimum;
    [FieldOffset(44)] public int Maximum;
    [FieldOffset(48)] public int Step;
    [FieldOffset(52)] public int DefaultValue;
    [FieldOffset(56)] public uint Flags;
}

/// <summary><c>struct v4l2_query_ext_ctrl</c> (232 bytes, 8-aligned).</summary>
[StructLayout(LayoutKind.Explicit, Size = 232)]
public unsafe struct V4l2QueryExtCtrl
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public fixed byte Name[32];
    [FieldOffset(40)] public long Minimum;
    [FieldOffset(48)] public long Maximum;
    [FieldOffset(56)] public ulong Step;
    [FieldOffset(64)] public long DefaultValue;
    [FieldOffset(72)] public uint Flags;
    [FieldOffset(76)] public uint ElemSize;
    [FieldOffset(80)] public uint Elems;
    [FieldOffset(84)] public uint NrOfDims;
    [FieldOffset(88)] public fixed uint Dims[4];
}

/// <summary><c>struct v4l2_querymenu</c> (44 bytes, packed).</summary>
[StructLayout(LayoutKind.Explicit, Size = 44)]
public unsafe struct V4l2QueryMenu
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public uint Index;
    [FieldOffset(8)] public fixed byte Name[32];
    [FieldOffset(8)] public long Value;
    [FieldOffset(40)] public uint Reserved;
}

/// <summary><c>struct v4l2_control</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct V4l2Control
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public int Value;
}

/// <summary><c>struct v4l2_ext_control</c> (20 bytes, packed).</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
public struct V4l2ExtControl
{
    [FieldOffset(0)] public uint Id;
    [FieldOffset(4)] public uint Size;
    [FieldOffset(8)] public uint Reserved2;
    [FieldOffset(12)] public int Value;
    [FieldOffset(12)] public long Value64;
}

/// <summary><c>struct v4l2_ext_controls</c> (32 bytes, 8-aligned).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct V4l2ExtControls
{
    [FieldOffset(0)] public uint Which;
    [FieldOffset(4)] public uint Count;
    [FieldOffset(8)] public uint ErrorIdx;
    [FieldOffset(12)] public int RequestFd;
    [FieldOffset(16)] public uint Reserved;
    [FieldOffset(24)] public ulong Controls;
}

/// <summary><c>struct v4l2_event_subscription</c> (32 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct V4l2EventSubscription
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public uint Flags;
}

/// <summary><c>struct v4l2_event</c> (136 bytes, 8-aligned); the control-event view of the union.</summary>
[StructLayout(LayoutKind.Explicit, Size = 136)]
public struct V4l2Event
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(8)] public uint CtrlChanges;
    /// <summary>The SOURCE_CHANGE view of the union: what changed (V4L2_EVENT_SRC_CH_*).</summary>
    [FieldOffset(8)] public uint SrcChangeChanges;
    [FieldOffset(12)] public uint CtrlType;
    [FieldOffset(16)] public int CtrlValue;
    [FieldOffset(16)] public long CtrlValue64;
    [FieldOffset(24)] public uint CtrlFlags;
    [FieldOffset(28)] public int CtrlMinimum;
    [FieldOffset(32)] public int CtrlMaximum;
    [FieldOffset(36)] public int CtrlStep;
    [FieldOffset(40)] public int CtrlDefaultValue;
    [FieldOffset(72)] public uint Pending;
    [FieldOffset(76)] public uint Sequence;
    [FieldOffset(80)] public long TimestampSec;
    [FieldOffset(88)] public long TimestampNsec;
    [FieldOffset(96)] public uint Id;
}

/// <summary><c>struct v4l2_selection</c> (64 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct V4l2Selection
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Target;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public V4l2Rect Rect;
}

/// <summary><c>struct v4l2_exportbuffer</c> (64 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct V4l2ExportBuffer
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Index;
    [FieldOffset(8)] public uint Plane;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public int Fd;
}

/// <summary>Helpers for the fixed-size, NUL-padded name fields of V4L2 structs.</summary>
public static class V4l2Text
{
    /// <summary>Writes <paramref name="text"/> as ASCII (others become '?') into <paramref name="field"/>, NUL-padded and truncated so
    /// that at least one NUL terminates it.</summary>
    public static void Write(Span<byte> field, string text)
    {
        field.Clear();
        int n = Math.Min(text.Length, field.Length - 1);
        for (int i = 0; i < n; i++)
        {
            char c = text[i];
            field[i] = c is >= ' ' and <= '~' ? (byte)c : (byte)'?';
        }
    }

    /// <summary>Writes <paramref name="text"/> into a fixed 32-byte name field given by a ref to its first byte
    /// (<c>ref query.Name[0]</c>): every V4L2 name and description field the device fills is 32 bytes.</summary>
    public static void Write(ref byte field, string text) => Write(MemoryMarshal.CreateSpan(ref field, 32), text);

    /// <summary>Reads a NUL-terminated (or full-length) name field.</summary>
    public static string Read(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }
}

/// <summary><c>struct v4l2_capability</c> (104 bytes): what VIDIOC_QUERYCAP answers. The guest never sends it
/// (its driver answers QUERYCAP from the config space); a proxy asks the host node.</summary>
[StructLayout(LayoutKind.Explicit, Size = 104)]
public unsafe struct V4l2Capability
{
    [FieldOffset(0)] public fixed byte Driver[16];
    [FieldOffset(16)] public fixed byte Card[32];
    [FieldOffset(48)] public fixed byte BusInfo[32];
    [FieldOffset(80)] public uint Version;
    [FieldOffset(84)] public uint Capabilities;
    [FieldOffset(88)] public uint DeviceCaps;
}
