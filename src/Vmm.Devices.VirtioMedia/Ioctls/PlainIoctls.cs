using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Ioctls;

/// <summary>One flat-payload ioctl: its size, its direction in videodev2.h (what a host node expects in the request
/// value) and the direction the virtio-media driver sends it in.</summary>
public readonly record struct PlainIoctl(V4l2IoctlCode Code, int Size, IoctlDirection Kernel, IoctlDirection Sent);

/// <summary>
/// The V4L2 ioctls whose payload is one structure without pointers, by the guest driver's table: they need no
/// decoding, so a proxy can pass them through as bytes of exactly the kernel's size. Sizes are the LP64 sizes of
/// <c>videodev2.h</c> (pinned by tests against the kernel's request values).
/// </summary>
public static class PlainIoctls
{
    public const int MaxSize = 2072;

    private const IoctlDirection R = IoctlDirection.Read, W = IoctlDirection.Write, WR = IoctlDirection.Read | IoctlDirection.Write;

    public static readonly PlainIoctl[] All =
    [
        new(V4l2IoctlCode.GStd, 8, R, R),
        new(V4l2IoctlCode.SStd, 8, W, W),
        new(V4l2IoctlCode.EnumStd, 72, WR, WR),
        new(V4l2IoctlCode.GTuner, 84, WR, WR),
        new(V4l2IoctlCode.STuner, 84, W, W),
        new(V4l2IoctlCode.GAudio, 52, R, R),
        new(V4l2IoctlCode.SAudio, 52, W, W),
        new(V4l2IoctlCode.GOutput, 4, R, WR),
        new(V4l2IoctlCode.SOutput, 4, WR, WR),
        new(V4l2IoctlCode.EnumOutput, 72, WR, WR),
        new(V4l2IoctlCode.GAudout, 52, R, R),
        new(V4l2IoctlCode.SAudout, 52, W, W),
        new(V4l2IoctlCode.GModulator, 68, WR, WR),
        new(V4l2IoctlCode.SModulator, 68, W, W),
        new(V4l2IoctlCode.GFrequency, 44, WR, WR),
        new(V4l2IoctlCode.SFrequency, 44, W, W),
        new(V4l2IoctlCode.QueryStd, 8, R, R),
        new(V4l2IoctlCode.EnumAudio, 52, WR, WR),
        new(V4l2IoctlCode.EnumAudout, 52, WR, WR),
        new(V4l2IoctlCode.GEncIndex, 2072, R, R),
        new(V4l2IoctlCode.EncoderCmd, 40, WR, WR),
        new(V4l2IoctlCode.TryEncoderCmd, 40, WR, WR),
        new(V4l2IoctlCode.SDvTimings, 132, WR, WR),
        new(V4l2IoctlCode.GDvTimings, 132, WR, WR),
        new(V4l2IoctlCode.DecoderCmd, 72, WR, WR),
        new(V4l2IoctlCode.TryDecoderCmd, 72, WR, WR),
        new(V4l2IoctlCode.EnumDvTimings, 148, WR, WR),
        new(V4l2IoctlCode.QueryDvTimings, 132, R, R),
        new(V4l2IoctlCode.DvTimingsCap, 144, WR, WR),
        new(V4l2IoctlCode.EnumFreqBands, 64, WR, WR),
        new(V4l2IoctlCode.SHwFreqSeek, 48, W, W),
    ];

    public static bool TryGet(V4l2IoctlCode code, out PlainIoctl plain)
    {
        foreach (PlainIoctl p in All)
        {
            if (p.Code == code)
            {
                plain = p;
                return true;
            }
        }
        plain = default;
        return false;
    }
}
