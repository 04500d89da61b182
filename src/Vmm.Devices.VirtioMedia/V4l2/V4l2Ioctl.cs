using System.Runtime.CompilerServices;

namespace Vmm.Devices.VirtioMedia.V4l2;

/// <summary>The V4L2 ioctl numbers (<c>_IOC_NR</c> of each <c>VIDIOC_*</c> request); virtio-media sends only this
/// number in <c>virtio_media_cmd_ioctl.code</c>.</summary>
public enum V4l2IoctlCode : uint
{
    QueryCap = 0,
    EnumFmt = 2,
    GFmt = 4,
    SFmt = 5,
    ReqBufs = 8,
    QueryBuf = 9,
    GFbuf = 10,
    SFbuf = 11,
    Overlay = 14,
    QBuf = 15,
    ExpBuf = 16,
    DqBuf = 17,
    StreamOn = 18,
    StreamOff = 19,
    GParm = 21,
    SParm = 22,
    GStd = 23,
    SStd = 24,
    EnumStd = 25,
    EnumInput = 26,
    GCtrl = 27,
    SCtrl = 28,
    GTuner = 29,
    STuner = 30,
    GAudio = 33,
    SAudio = 34,
    QueryCtrl = 36,
    QueryMenu = 37,
    GInput = 38,
    SInput = 39,
    GEdid = 40,
    SEdid = 41,
    GOutput = 46,
    SOutput = 47,
    EnumOutput = 48,
    GAudout = 49,
    SAudout = 50,
    GModulator = 54,
    SModulator = 55,
    GFrequency = 56,
    SFrequency = 57,
    CropCap = 58,
    GCrop = 59,
    SCrop = 60,
    GJpegComp = 61,
    SJpegComp = 62,
    QueryStd = 63,
    TryFmt = 64,
    EnumAudio = 65,
    EnumAudout = 66,
    GPriority = 67,
    SPriority = 68,
    GSlicedVbiCap = 69,
    LogStatus = 70,
    GExtCtrls = 71,
    SExtCtrls = 72,
    TryExtCtrls = 73,
    EnumFrameSizes = 74,
    EnumFrameIntervals = 75,
    GEncIndex = 76,
    EncoderCmd = 77,
    TryEncoderCmd = 78,
    DbgSRegister = 79,
    DbgGRegister = 80,
    SHwFreqSeek = 82,
    SDvTimings = 87,
    GDvTimings = 88,
    DqEvent = 89,
    SubscribeEvent = 90,
    UnsubscribeEvent = 91,
    CreateBufs = 92,
    PrepareBuf = 93,
    GSelection = 94,
    SSelection = 95,
    DecoderCmd = 96,
    TryDecoderCmd = 97,
    EnumDvTimings = 98,
    QueryDvTimings = 99,
    DvTimingsCap = 100,
    EnumFreqBands = 101,
    DbgGChipInfo = 102,
    QueryExtCtrl = 103,
}

/// <summary>Direction of an ioctl's payload as encoded in the request value (<c>_IOC_DIR</c>).</summary>
[Flags]
public enum IoctlDirection : uint
{
    None = 0,
    /// <summary>_IOC_WRITE: userspace → driver (the device reads it).</summary>
    Write = 1,
    /// <summary>_IOC_READ: driver → userspace (the device writes it).</summary>
    Read = 2,
}

/// <summary>Computes full Linux ioctl request values from the direction, the V4L2 type letter 'V', the number and
/// the payload size — the same arithmetic as the kernel's <c>_IOC()</c> macro on x86_64/arm64.</summary>
public static class V4l2Ioctl
{
    private const int NrShift = 0, TypeShift = 8, SizeShift = 16, DirShift = 30;

    /// <summary><c>_IOC(dir, 'V', nr, size)</c>.</summary>
    public static uint Request(IoctlDirection direction, V4l2IoctlCode code, int size) =>
        (uint)direction << DirShift | (uint)size << SizeShift | (uint)'V' << TypeShift | (uint)code << NrShift;

    /// <summary><c>_IOWR('V', nr, T)</c> etc., with the size taken from the C# struct.</summary>
    public static uint Request<T>(IoctlDirection direction, V4l2IoctlCode code) where T : unmanaged =>
        Request(direction, code, Unsafe.SizeOf<T>());

    /// <summary>The request number from a full request value (what virtio-media puts on the wire).</summary>
    public static V4l2IoctlCode CodeOf(uint request) => (V4l2IoctlCode)(request & 0xFF);
}
