using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// What every kit session answers the same way: the control ioctls from its device's <see cref="V4l2ControlSet"/>,
/// and SUBSCRIBE/UNSUBSCRIBE_EVENT from the session's own <see cref="V4l2EventSubscriptions"/>, which listens to
/// that set so a control change becomes a CTRL event for every subscribed handle.
/// </summary>
public abstract class V4l2KitSession : MediaBackendSession
{
    /// <summary>A session of a device with <paramref name="controls"/>, whose events go to <paramref name="host"/>.</summary>
    protected V4l2KitSession(V4l2ControlSet controls, IMediaSessionHost host)
    {
        Host = host;
        Controls = controls;
        Events = new V4l2EventSubscriptions(host);
        controls.AddListener(Events);
    }

    /// <summary>The device services this session uses.</summary>
    protected IMediaSessionHost Host { get; }

    /// <summary>The device's controls.</summary>
    protected V4l2ControlSet Controls { get; }

    /// <summary>This session's event subscriptions.</summary>
    protected V4l2EventSubscriptions Events { get; }

    public sealed override int QueryControl(ref V4l2QueryCtrl query) => Controls.Query(ref query);

    public sealed override int QueryExtControl(ref V4l2QueryExtCtrl query) => Controls.QueryExt(ref query);

    public sealed override int QueryMenu(ref V4l2QueryMenu menu) => Controls.QueryMenu(ref menu);

    public sealed override int GetControl(ref V4l2Control control) => Controls.Get(ref control);

    public sealed override int SetControl(ref V4l2Control control) => Controls.Set(ref control, Events);

    public sealed override int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls) =>
        Controls.Extended(code, ref header, controls, Events);

    public sealed override int ExtControls(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls, in SharedPagesLists payloads) =>
        Controls.Extended(code, ref header, controls, Events, payloads, Host.GuestMemory);

    public sealed override int SubscribeEvent(in V4l2EventSubscription subscription) => Events.Subscribe(subscription, Controls);

    public sealed override int UnsubscribeEvent(in V4l2EventSubscription subscription) => Events.Unsubscribe(subscription);

    /// <summary>Drops the subscriptions and stops listening to the controls (CLOSE).</summary>
    protected void CloseEvents()
    {
        Events.Clear();
        Controls.RemoveListener(Events);
    }
}
