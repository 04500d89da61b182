using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Ioctls;

/// <summary>
/// One virtual method per V4L2 ioctl a virtio-media device can receive; each returns 0 or a positive Linux errno
/// and, by default, <see cref="Errno.ENOTTY"/> (not supported). The <see cref="IoctlDispatcher"/> has already
/// parsed and size-checked the guest's payload into the typed arguments and copied every input before any output
/// is written; a handler only fills the structures it is given. Pointer fields in the payload are restored by the
/// dispatcher, so whatever a handler leaves there never reaches the guest; so are the identity fields of a successful
/// answer (index, buffer type, pixel format and size, menu id, selection target: <see cref="IdentityFields"/>), so a
/// handler may answer from a cleared structure.
/// </summary>
public abstract class IoctlHandler
{
    public virtual int EnumFormat(ref V4l2FmtDesc desc) => Errno.ENOTTY;
    public virtual int GetFormat(ref V4l2Format format) => Errno.ENOTTY;
    public virtual int SetFormat(ref V4l2Format format) => Errno.ENOTTY;
    public virtual int TryFormat(ref V4l2Format format) => Errno.ENOTTY;
    public virtual int EnumFrameSizes(ref V4l2FrmSizeEnum sizes) => Errno.ENOTTY;
    public virtual int EnumFrameIntervals(ref V4l2FrmIvalEnum intervals) => Errno.ENOTTY;
    public virtual int GetParm(ref V4l2StreamParm parm) => Errno.ENOTTY;
    public virtual int SetParm(ref V4l2StreamParm parm) => Errno.ENOTTY;

    public virtual int RequestBuffers(ref V4l2RequestBuffers request) => Errno.ENOTTY;
    public virtual int CreateBuffers(ref V4l2CreateBuffers create) => Errno.ENOTTY;

    /// <summary>QUERYBUF. <paramref name="planes"/> holds as many planes as the guest sent room for (MPLANE only).</summary>
    public virtual int QueryBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes) => Errno.ENOTTY;

    /// <summary>QBUF. For SHARED_PAGES (USERPTR) buffers <paramref name="pages"/> holds each plane's validated
    /// guest scatter list (lengths sum exactly to the plane length).</summary>
    public virtual int QueueBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) => Errno.ENOTTY;

    public virtual int PrepareBuffer(ref V4l2Buffer buffer, Span<V4l2Plane> planes, in SharedPagesLists pages) => Errno.ENOTTY;

    /// <summary>EXPBUF: not possible until a dma-buf path exists.</summary>
    public virtual int ExportBuffer(ref V4l2ExportBuffer export) => Errno.ENOTTY;

    public virtual int StreamOn(uint bufferType) => Errno.ENOTTY;
    public virtual int StreamOff(uint bufferType) => Errno.ENOTTY;

    public virtual int EnumInput(ref V4l2Input input) => Errno.ENOTTY;
    public virtual int GetInput(out uint index)
    {
        index = 0;
        return Errno.ENOTTY;
    }
    public virtual int SetInput(ref uint index) => Errno.ENOTTY;

    public virtual int QueryControl(ref V4l2QueryCtrl query) => Errno.ENOTTY;
    public virtual int QueryExtControl(ref V4l2QueryExtCtrl query) => Errno.ENOTTY;
    public virtual int QueryMenu(ref V4l2QueryMenu menu) => Errno.ENOTTY;
    public virtual int GetControl(ref V4l2Control control) => Errno.ENOTTY;
    public virtual int SetControl(ref V4l2Control control) => Errno.ENOTTY;

    /// <summary>G/S/TRY_EXT_CTRLS (<paramref name="code"/> tells which). On error the header and array are
    /// still sent back so the guest sees <c>error_idx</c>.</summary>
    public virtual int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls) => Errno.ENOTTY;

    /// <summary>G/S/TRY_EXT_CTRLS with the payloads of pointer controls (string, array, compound: <c>size</c> &gt; 0):
    /// <paramref name="payloads"/>.<see cref="SharedPagesLists.Plane"/>(i) is control i's validated guest scatter list
    /// (empty for value controls), whose lengths sum exactly to its <c>size</c>. For G the device writes the value
    /// into those guest pages; S/TRY read it from them and write the adjusted value back on success. Each control's
    /// pointer field goes back to the guest as the handler leaves it, so a handler that sets one must restore it.
    /// Defaults to the payload-less overload.</summary>
    public virtual int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls, in SharedPagesLists payloads) =>
        ExtControls(code, ref header, controls);

    public virtual int GetSelection(ref V4l2Selection selection) => Errno.ENOTTY;
    public virtual int SetSelection(ref V4l2Selection selection) => Errno.ENOTTY;

    /// <summary>An ioctl whose payload is one flat structure with no pointer in it (standards, tuners, audio,
    /// outputs, frequencies, DV timings, encoder/decoder commands: <see cref="PlainIoctls"/>). <paramref name="payload"/>
    /// is exactly the structure's size, holding the guest's input (zeros where the guest sends none); what the
    /// handler leaves there is the answer for ioctls that return one.</summary>
    public virtual int PlainIoctl(V4l2IoctlCode code, IoctlDirection direction, Span<byte> payload) => Errno.ENOTTY;

    public virtual int SubscribeEvent(in V4l2EventSubscription subscription) => Errno.ENOTTY;
    public virtual int UnsubscribeEvent(in V4l2EventSubscription subscription) => Errno.ENOTTY;
}

/// <summary>The scatter lists of a SHARED_PAGES (USERPTR) QBUF: one contiguous run of entries per plane.</summary>
public readonly ref struct SharedPagesLists
{
    private readonly ReadOnlySpan<SgEntry> _entries;
    private readonly ReadOnlySpan<int> _planeStart;
    private readonly ReadOnlySpan<int> _planeCount;

    public SharedPagesLists(ReadOnlySpan<SgEntry> entries, ReadOnlySpan<int> planeStart, ReadOnlySpan<int> planeCount)
    {
        _entries = entries;
        _planeStart = planeStart;
        _planeCount = planeCount;
    }

    /// <summary>Number of planes with a list (0 for non-USERPTR buffers).</summary>
    public int PlaneCount => _planeStart.Length;

    /// <summary>The entries of plane <paramref name="plane"/> (empty when that plane's length was 0).</summary>
    public ReadOnlySpan<SgEntry> Plane(int plane) => _entries.Slice(_planeStart[plane], _planeCount[plane]);
}
