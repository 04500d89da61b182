namespace Vmm.Devices.VirtioMedia.V4l2;

/// <summary>V4L2 buffer types (<c>enum v4l2_buf_type</c>).</summary>
public enum V4l2BufferType : uint
{
    VideoCapture = 1,
    VideoOutput = 2,
    VideoOverlay = 3,
    VbiCapture = 4,
    VbiOutput = 5,
    SlicedVbiCapture = 6,
    SlicedVbiOutput = 7,
    VideoOutputOverlay = 8,
    VideoCaptureMplane = 9,
    VideoOutputMplane = 10,
    SdrCapture = 11,
    SdrOutput = 12,
    MetaCapture = 13,
    MetaOutput = 14,
}

/// <summary>V4L2 memory types (<c>enum v4l2_memory</c>); virtio-media calls USERPTR "SHARED_PAGES".</summary>
public enum V4l2Memory : uint
{
    Mmap = 1,
    UserPtr = 2,
    Overlay = 3,
    DmaBuf = 4,
}

/// <summary>V4L2 constants used by the device (values from the Linux UAPI <c>videodev2.h</c>).</summary>
public static class V4l2Const
{
    // Capabilities (v4l2_capability.device_caps).
    public const uint CapVideoCapture = 0x1;
    public const uint CapVideoOutput = 0x2;
    public const uint CapVideoCaptureMplane = 0x1000;
    public const uint CapVideoOutputMplane = 0x2000;
    public const uint CapVideoM2mMplane = 0x4000;
    public const uint CapVideoM2m = 0x8000;
    public const uint CapExtPixFormat = 0x200000;
    public const uint CapReadWrite = 0x1000000;
    public const uint CapStreaming = 0x4000000;
    public const uint CapDeviceCaps = 0x80000000;
    public const uint CapTimePerFrame = 0x1000;

    // Buffer flags.
    public const uint BufFlagMapped = 0x1;
    public const uint BufFlagQueued = 0x2;
    public const uint BufFlagDone = 0x4;
    public const uint BufFlagKeyframe = 0x8;
    public const uint BufFlagTimecode = 0x100;
    public const uint BufFlagError = 0x40;
    public const uint BufFlagPrepared = 0x400;
    public const uint BufFlagTimestampMonotonic = 0x2000;
    public const uint BufFlagTimestampCopy = 0x4000;
    public const uint BufFlagTstampSrcSoe = 0x10000;
    public const uint BufFlagTstampSrcMask = 0x70000;
    public const uint BufFlagLast = 0x100000;

    // REQBUFS / CREATE_BUFS capabilities.
    public const uint BufCapSupportsMmap = 0x1;
    public const uint BufCapSupportsUserPtr = 0x2;
    public const uint BufCapSupportsDmaBuf = 0x4;
    public const uint BufCapSupportsOrphanedBufs = 0x10;
    public const uint BufCapSupportsMaxNumBuffers = 0x80;

    // Fields, colorspaces.
    public const uint FieldAny = 0;
    public const uint FieldNone = 1;
    public const uint ColorspaceSmpte170m = 1;
    public const uint ColorspaceRec709 = 3;
    public const uint ColorspaceJpeg = 7;
    public const uint ColorspaceSrgb = 8;
    public const uint YcbcrEnc601 = 1;
    public const uint QuantizationFullRange = 1;
    public const uint XferFuncDefault = 0;
    public const uint YcbcrEncDefault = 0;
    public const uint QuantizationDefault = 0;

    // Frame size / interval enumeration types.
    public const uint FrmSizeTypeDiscrete = 1;
    public const uint FrmSizeTypeStepwise = 3;

    // Format description flags (v4l2_fmtdesc.flags).
    public const uint FmtFlagCompressed = 0x0001;
    public const uint FmtFlagContinuousBytestream = 0x0004;
    public const uint FmtFlagDynResolution = 0x0008;

    // Decoder commands (v4l2_decoder_cmd.cmd).
    public const uint DecCmdStart = 0;
    public const uint DecCmdStop = 1;
    public const uint DecCmdPause = 2;
    public const uint DecCmdResume = 3;
    public const uint FrmIvalTypeDiscrete = 1;

    // Inputs.
    public const uint InputTypeCamera = 2;

    // Controls.
    public const uint CtrlClassUser = 0x00980000;
    public const uint CidBase = 0x00980900;
    public const uint CidBrightness = CidBase + 0;
    public const uint CidContrast = CidBase + 1;
    public const uint CtrlClassCamera = 0x009A0000;
    public const uint CtrlClassImageProc = 0x009F0000;
    public const uint CidTestPattern = (CtrlClassImageProc | 0x900) + 3;
    public const uint CtrlFlagNextCtrl = 0x80000000;
    public const uint CtrlFlagNextCompound = 0x40000000;
    public const uint CtrlIdMask = 0x0FFFFFFF;
    public const uint CtrlFlagSlider = 0x0020;
    public const uint CtrlFlagReadOnly = 0x0004;
    public const uint CtrlFlagWriteOnly = 0x0040;
    public const uint CtrlFlagVolatile = 0x0080;
    public const uint CtrlFlagHasPayload = 0x0100;
    public const uint CidMinBuffersForCapture = CidBase + 39;
    public const uint CtrlTypeInteger = 1;
    public const uint CtrlTypeBoolean = 2;
    public const uint CtrlTypeMenu = 3;
    public const uint CtrlTypeCtrlClass = 6;
    public const uint CtrlTypeCompoundTypes = 0x0100;
    public const uint CtrlTypeU8 = 0x0100;
    public const uint CtrlTypeU16 = 0x0101;
    public const uint CtrlTypeU32 = 0x0102;
    public const uint CtrlWhichCurVal = 0;
    public const uint CtrlWhichDefVal = 0x0F000000;
    public const uint CtrlWhichRequestVal = 0x0F010000;

    // Events.
    public const uint EventAll = 0;
    public const uint EventVsync = 1;
    public const uint EventEos = 2;
    public const uint EventCtrl = 3;
    public const uint EventFrameSync = 4;
    public const uint EventSourceChange = 5;
    public const uint EventSubFlSendInitial = 0x1;
    public const uint EventCtrlChValue = 0x1;
    public const uint EventCtrlChFlags = 0x2;
    public const uint EventCtrlChRange = 0x4;
    public const uint EventSrcChResolution = 0x1;

    // Selection targets.
    public const uint SelTgtCrop = 0x0000;
    public const uint SelTgtCropDefault = 0x0001;
    public const uint SelTgtCropBounds = 0x0002;
    public const uint SelTgtNativeSize = 0x0003;
    public const uint SelTgtCompose = 0x0100;
    public const uint SelTgtComposeDefault = 0x0101;
    public const uint SelTgtComposeBounds = 0x0102;
    public const uint SelTgtComposePadded = 0x0103;

    public const int VideoMaxPlanes = 8;
    public const int VideoMaxFrame = 32;
}

/// <summary>Pixel format four-character codes.</summary>
public static class FourCc
{
    public static uint Make(char a, char b, char c, char d) => a | (uint)b << 8 | (uint)c << 16 | (uint)d << 24;

    /// <summary>YUYV 4:2:2 packed.</summary>
    public const uint Yuyv = 0x56595559;
    /// <summary>NV12: Y plane then interleaved CbCr, 4:2:0, one memory plane.</summary>
    public const uint Nv12 = 0x3231564E;
    /// <summary>YU12 (YUV420): Y, Cb, Cr planes, 4:2:0, one memory plane.</summary>
    public const uint Yu12 = 0x32315559;
    /// <summary>NM12 (NV12M): NV12 in two memory planes.</summary>
    public const uint Nv12M = 0x32314D4E;
    /// <summary>YM12 (YUV420M): YU12 in three memory planes.</summary>
    public const uint Yu12M = 0x32314D59;
    /// <summary>RGB3: RGB24, byte order R, G, B.</summary>
    public const uint Rgb24 = 0x33424752;
    /// <summary>BGR3: BGR24, byte order B, G, R.</summary>
    public const uint Bgr24 = 0x33524742;
    public const uint Xbgr32 = 0x34325258; // 'XR24': B, G, R, X in memory
    public const uint Jpeg = 0x4745504A;   // 'JPEG'
    public const uint Mjpeg = 0x47504A4D;  // 'MJPG'

    /// <summary>Renders a fourcc as its four characters (e.g. "YUYV").</summary>
    public static string ToString(uint fourcc) =>
        string.Create(4, fourcc, static (s, v) =>
        {
            for (int i = 0; i < 4; i++)
            {
                char c = (char)((v >> (8 * i)) & 0xFF);
                s[i] = c is >= ' ' and <= '~' ? c : '?';
            }
        });

    /// <summary>Parses a 4-character code; false when the text is not exactly 4 printable ASCII characters.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out uint fourcc)
    {
        fourcc = 0;
        if (text.Length != 4)
        {
            return false;
        }
        for (int i = 0; i < 4; i++)
        {
            if (text[i] is < ' ' or > '~')
            {
                return false;
            }
            fourcc |= (uint)text[i] << (8 * i);
        }
        return true;
    }
}
