using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Protocol;

/// <summary>virtio-media command codes (<c>virtio_media_cmd_header.cmd</c>).</summary>
public enum VirtioMediaCommand : uint
{
    Open = 1,
    Close = 2,
    Ioctl = 3,
    Mmap = 4,
    Munmap = 5,
}

/// <summary>virtio-media event types (<c>virtio_media_event_header.event</c>).</summary>
public enum VirtioMediaEventType : uint
{
    Error = 0,
    Dqbuf = 1,
    Event = 2,
}

/// <summary>Sizes of the wire structures and other protocol constants.</summary>
public static class VirtioMediaWire
{
    public const int CmdHeaderSize = 8;
    public const int RespHeaderSize = 8;
    public const int CmdOpenSize = 8;
    public const int RespOpenSize = 16;
    public const int CmdCloseSize = 16;
    public const int CmdIoctlSize = 16;
    public const int CmdMmapSize = 20;
    public const int RespMmapSize = 24;
    public const int CmdMunmapSize = 16;
    public const int RespMunmapSize = 8;
    public const int EventHeaderSize = 8;
    public const int EventErrorSize = 16;
    public const int EventDqbufSize = 608;
    public const int EventEventSize = 144;
    public const int SgEntrySize = 16;
    public const int ConfigSize = 40;
    public const int CardNameSize = 32;

    /// <summary>Largest event; the driver posts event buffers of exactly this size.</summary>
    public const int EventMaxSize = EventDqbufSize;

    /// <summary><c>VIRTIO_MEDIA_MMAP_FLAG_RW</c>.</summary>
    public const uint MmapFlagRw = 1;

    /// <summary>Shared-memory region id holding MMAP buffers.</summary>
    public const byte ShmIdMmap = 0;
}

/// <summary><c>virtio_media_cmd_header</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct CmdHeader
{
    [FieldOffset(0)] public uint Cmd;
    [FieldOffset(4)] public uint Reserved;
}

/// <summary><c>virtio_media_resp_header</c> (8 bytes): a positive Linux errno, or 0.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct RespHeader
{
    [FieldOffset(0)] public uint Status;
    [FieldOffset(4)] public uint Reserved;
}

/// <summary><c>virtio_media_resp_open</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct RespOpen
{
    [FieldOffset(0)] public RespHeader Header;
    [FieldOffset(8)] public uint SessionId;
}

/// <summary><c>virtio_media_cmd_close</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct CmdClose
{
    [FieldOffset(0)] public CmdHeader Header;
    [FieldOffset(8)] public uint SessionId;
}

/// <summary><c>virtio_media_cmd_ioctl</c> (16 bytes), followed by the input payload.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct CmdIoctl
{
    [FieldOffset(0)] public CmdHeader Header;
    [FieldOffset(8)] public uint SessionId;
    [FieldOffset(12)] public uint Code;
}

/// <summary><c>virtio_media_cmd_mmap</c> (20 bytes, no trailing padding).</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
public struct CmdMmap
{
    [FieldOffset(0)] public CmdHeader Header;
    [FieldOffset(8)] public uint SessionId;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public uint Offset;
}

/// <summary><c>virtio_media_resp_mmap</c> (24 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
public struct RespMmap
{
    [FieldOffset(0)] public RespHeader Header;
    [FieldOffset(8)] public ulong DriverAddr;
    [FieldOffset(16)] public ulong Length;
}

/// <summary><c>virtio_media_cmd_munmap</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct CmdMunmap
{
    [FieldOffset(0)] public CmdHeader Header;
    [FieldOffset(8)] public ulong DriverAddr;
}

/// <summary><c>virtio_media_sg_entry</c> (16 bytes): a guest-physical segment of a SHARED_PAGES buffer.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct SgEntry
{
    [FieldOffset(0)] public ulong Start;
    [FieldOffset(8)] public uint Length;
    [FieldOffset(12)] public uint Reserved;
}

/// <summary><c>virtio_media_event_header</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
public struct EventHeader
{
    [FieldOffset(0)] public uint Event;
    [FieldOffset(4)] public uint SessionId;
}

/// <summary><c>virtio_media_event_error</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct EventError
{
    [FieldOffset(0)] public EventHeader Header;
    [FieldOffset(8)] public uint Errno;
}

/// <summary><c>virtio_media_event_dqbuf</c> (608 bytes): the buffer plus room for 8 planes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 608)]
public struct EventDqbuf
{
    [FieldOffset(0)] public EventHeader Header;
    [FieldOffset(8)] public V4l2Buffer Buffer;
    [FieldOffset(96)] public PlaneArray Planes;

    /// <summary>Eight <see cref="V4l2Plane"/>s.</summary>
    [System.Runtime.CompilerServices.InlineArray(8)]
    public struct PlaneArray
    {
        private V4l2Plane _element0;
    }
}

/// <summary><c>virtio_media_event_event</c> (144 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 144)]
public struct EventEvent
{
    [FieldOffset(0)] public EventHeader Header;
    [FieldOffset(8)] public V4l2Event Event;
}

/// <summary>The 40-byte device configuration space (<c>struct virtio_media_config</c>).</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public unsafe struct VirtioMediaConfig
{
    [FieldOffset(0)] public uint DeviceCaps;
    [FieldOffset(4)] public uint DeviceType;
    [FieldOffset(8)] public fixed byte Card[32];
}
