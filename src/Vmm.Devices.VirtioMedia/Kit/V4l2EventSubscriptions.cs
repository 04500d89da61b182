using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>
/// One session's SUBSCRIBE_EVENT/UNSUBSCRIBE_EVENT state, as v4l2-event keeps it per file handle: control events
/// (for the controls of a <see cref="V4l2ControlSet"/>), SOURCE_CHANGE and EOS. Control changes reach it through the
/// control set; it sends the V4L2 events through the session's host. Thread-safe.
/// </summary>
public sealed class V4l2EventSubscriptions
{
    // V4L2_EVENT_SUB_FL_ALLOW_FEEDBACK: the setter itself also hears about its own change.
    private const uint AllowFeedback = 0x2;

    private readonly IMediaSessionHost _host;
    private readonly object _lock = new();
    private readonly List<(uint Type, uint Id, uint Flags)> _subscriptions = [];

    /// <summary>Subscriptions whose events go to <paramref name="host"/>'s session.</summary>
    public V4l2EventSubscriptions(IMediaSessionHost host)
    {
        _host = host;
    }

    /// <summary>SUBSCRIBE_EVENT: CTRL for a control of <paramref name="controls"/> (with SEND_INITIAL, its current
    /// value at once), SOURCE_CHANGE or EOS (id 0). Anything else is EINVAL.</summary>
    public int Subscribe(in V4l2EventSubscription subscription, V4l2ControlSet controls)
    {
        switch (subscription.Type)
        {
            case V4l2Const.EventCtrl:
            {
                int i = controls.Find(subscription.Id);
                if (i < 0)
                {
                    return Errno.EINVAL;
                }
                Add(subscription);
                if ((subscription.Flags & V4l2Const.EventSubFlSendInitial) != 0 && !controls[i].IsClass)
                {
                    SendControlEvent(controls[i], controls.Value(subscription.Id),
                        V4l2Const.EventCtrlChValue | V4l2Const.EventCtrlChFlags | V4l2Const.EventCtrlChRange);
                }
                return 0;
            }
            case V4l2Const.EventSourceChange:
            case V4l2Const.EventEos:
                if (subscription.Id != 0)
                {
                    return Errno.EINVAL;
                }
                Add(subscription);
                return 0;
            default:
                return Errno.EINVAL;
        }
    }

    private void Add(in V4l2EventSubscription s)
    {
        lock (_lock)
        {
            for (int i = 0; i < _subscriptions.Count; i++)
            {
                if (_subscriptions[i].Type == s.Type && _subscriptions[i].Id == s.Id)
                {
                    _subscriptions[i] = (s.Type, s.Id, s.Flags);
                    return;
                }
            }
            _subscriptions.Add((s.Type, s.Id, s.Flags));
        }
    }

    /// <summary>UNSUBSCRIBE_EVENT (V4L2_EVENT_ALL drops every subscription). Never fails.</summary>
    public int Unsubscribe(in V4l2EventSubscription subscription)
    {
        lock (_lock)
        {
            if (subscription.Type == V4l2Const.EventAll)
            {
                _subscriptions.Clear();
                return 0;
            }
            for (int i = 0; i < _subscriptions.Count; i++)
            {
                if (_subscriptions[i].Type == subscription.Type && _subscriptions[i].Id == subscription.Id)
                {
                    _subscriptions.RemoveAt(i);
                    break;
                }
            }
        }
        return 0;
    }

    /// <summary>Drops every subscription (CLOSE).</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _subscriptions.Clear();
        }
    }

    /// <summary>Sends SOURCE_CHANGE (a new stream resolution) when subscribed.</summary>
    public void SendSourceChange()
    {
        if (IsSubscribed(V4l2Const.EventSourceChange))
        {
            var e = new V4l2Event { Type = V4l2Const.EventSourceChange, SrcChangeChanges = V4l2Const.EventSrcChResolution };
            _host.SendEvent(e);
        }
    }

    /// <summary>Sends EOS (the last buffer of a drain is done) when subscribed.</summary>
    public void SendEndOfStream()
    {
        if (IsSubscribed(V4l2Const.EventEos))
        {
            var e = new V4l2Event { Type = V4l2Const.EventEos };
            _host.SendEvent(e);
        }
    }

    private bool IsSubscribed(uint type)
    {
        lock (_lock)
        {
            foreach ((uint t, _, _) in _subscriptions)
            {
                if (t == type)
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>A control's value changed: sends a CTRL event when subscribed, and to the session that made the
    /// change (<paramref name="fromThisSession"/>) only when it asked for feedback.</summary>
    internal void ControlChanged(in V4l2ControlInfo control, int value, bool fromThisSession)
    {
        bool send = false;
        lock (_lock)
        {
            foreach ((uint type, uint id, uint flags) in _subscriptions)
            {
                if (type == V4l2Const.EventCtrl && id == control.Id && (!fromThisSession || (flags & AllowFeedback) != 0))
                {
                    send = true;
                }
            }
        }
        if (send)
        {
            SendControlEvent(control, value, V4l2Const.EventCtrlChValue);
        }
    }

    private void SendControlEvent(in V4l2ControlInfo c, int value, uint changes)
    {
        var e = new V4l2Event
        {
            Type = V4l2Const.EventCtrl,
            Id = c.Id,
            CtrlChanges = changes,
            CtrlType = c.Type,
            CtrlFlags = c.Flags,
            CtrlMinimum = c.Min,
            CtrlMaximum = c.Max,
            CtrlStep = c.Step,
            CtrlDefaultValue = c.Default,
        };
        e.CtrlValue64 = 0;
        e.CtrlValue = value;
        _host.SendEvent(e);
    }
}
