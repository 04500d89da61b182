using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>One control as QUERYCTRL describes it; <paramref name="Menu"/> names the items of a menu control.</summary>
public readonly record struct V4l2ControlInfo(uint Id, uint Type, string Name, int Min, int Max, int Step, int Default, uint Flags,
    string[]? Menu = null)
{
    private const uint FlagReadOnly = 0x4, FlagWriteOnly = 0x40;

    /// <summary>The class control that heads a control class (<paramref name="ctrlClass"/> | 1): it only names the
    /// class for enumeration and is neither read nor written.</summary>
    public static V4l2ControlInfo Class(uint ctrlClass, string name) =>
        new(ctrlClass | 1, V4l2Const.CtrlTypeCtrlClass, name, 0, 0, 0, 0, FlagReadOnly | FlagWriteOnly);

    /// <summary>True for a class control.</summary>
    public bool IsClass => Type == V4l2Const.CtrlTypeCtrlClass;
}

/// <summary>
/// A device's 32-bit controls (integer, menu and class controls), as v4l2-ctrls keeps them: the values belong to the
/// device, not to a file handle. It answers QUERYCTRL, QUERY_EXT_CTRL (NEXT_CTRL enumeration), QUERYMENU, G/S_CTRL
/// and G/S/TRY_EXT_CTRLS with the kernel's error_idx rules, and sends control events to every session's
/// <see cref="V4l2EventSubscriptions"/> when a value changes. Thread-safe.
/// </summary>
public sealed class V4l2ControlSet
{
    private readonly V4l2ControlInfo[] _controls;
    private readonly int[] _values;
    private readonly object _lock = new();
    private readonly List<V4l2EventSubscriptions> _listeners = [];

    /// <summary>A set of <paramref name="controls"/>, sorted by id (as NEXT_CTRL enumeration requires), each at
    /// its default value.</summary>
    public V4l2ControlSet(V4l2ControlInfo[] controls)
    {
        for (int i = 1; i < controls.Length; i++)
        {
            if (controls[i].Id <= controls[i - 1].Id)
            {
                throw new ArgumentException("controls must be sorted by id, without repeats", nameof(controls));
            }
        }
        _controls = controls;
        _values = new int[controls.Length];
        for (int i = 0; i < controls.Length; i++)
        {
            _values[i] = controls[i].Default;
        }
    }

    /// <summary>The control at <paramref name="index"/> (see <see cref="Find"/>).</summary>
    public ref readonly V4l2ControlInfo this[int index] => ref _controls[index];

    /// <summary>The index of the control with <paramref name="id"/>, or -1.</summary>
    public int Find(uint id)
    {
        for (int i = 0; i < _controls.Length; i++)
        {
            if (_controls[i].Id == id)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The current value of control <paramref name="id"/> (0 for an unknown id).</summary>
    public int Value(uint id)
    {
        int i = Find(id);
        lock (_lock)
        {
            return i < 0 ? 0 : _values[i];
        }
    }

    /// <summary>The current values of <paramref name="ids"/> into <paramref name="values"/>, read together (one
    /// consistent set, as a frame is drawn with); 0 for an unknown id.</summary>
    public void Read(ReadOnlySpan<uint> ids, Span<int> values)
    {
        lock (_lock)
        {
            for (int k = 0; k < ids.Length; k++)
            {
                int i = Find(ids[k]);
                values[k] = i < 0 ? 0 : _values[i];
            }
        }
    }

    /// <summary>Sends control events of this set to <paramref name="subscriptions"/> (a session opened).</summary>
    public void AddListener(V4l2EventSubscriptions subscriptions)
    {
        lock (_lock)
        {
            _listeners.Add(subscriptions);
        }
    }

    /// <summary>Stops sending to <paramref name="subscriptions"/> (its session closed).</summary>
    public void RemoveListener(V4l2EventSubscriptions subscriptions)
    {
        lock (_lock)
        {
            _listeners.Remove(subscriptions);
        }
    }

    /// <summary>QUERYCTRL.</summary>
    public int Query(ref V4l2QueryCtrl query)
    {
        int i = FindForQuery(query.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        ref readonly V4l2ControlInfo c = ref _controls[i];
        query = default;
        query.Id = c.Id;
        query.Type = c.Type;
        query.Minimum = c.Min;
        query.Maximum = c.Max;
        query.Step = c.Step;
        query.DefaultValue = c.Default;
        query.Flags = c.Flags;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], c.Name);
        }
        return 0;
    }

    /// <summary>QUERY_EXT_CTRL: as <see cref="Query"/>, each control one 4-byte element.</summary>
    public int QueryExt(ref V4l2QueryExtCtrl query)
    {
        var basic = new V4l2QueryCtrl { Id = query.Id };
        int status = Query(ref basic);
        if (status != 0)
        {
            return status;
        }
        query = default;
        query.Id = basic.Id;
        query.Type = basic.Type;
        query.Minimum = basic.Minimum;
        query.Maximum = basic.Maximum;
        query.Step = (ulong)basic.Step;
        query.DefaultValue = basic.DefaultValue;
        query.Flags = basic.Flags;
        query.ElemSize = 4;
        query.Elems = 1;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], _controls[Find(basic.Id)].Name);
        }
        return 0;
    }

    // Exact id, or with NEXT_CTRL the first control whose id is greater. Only NEXT_COMPOUND: none exist.
    private int FindForQuery(uint id)
    {
        bool next = (id & V4l2Const.CtrlFlagNextCtrl) != 0;
        bool nextCompound = (id & V4l2Const.CtrlFlagNextCompound) != 0;
        uint bare = id & V4l2Const.CtrlIdMask;
        if (!next && !nextCompound)
        {
            return Find(id);
        }
        if (!next)
        {
            return -1;
        }
        for (int i = 0; i < _controls.Length; i++)
        {
            if (_controls[i].Id > bare)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>QUERYMENU: the item names of menu controls.</summary>
    public int QueryMenu(ref V4l2QueryMenu menu)
    {
        int i = Find(menu.Id);
        if (i < 0 || _controls[i].Type != V4l2Const.CtrlTypeMenu || _controls[i].Menu is not { } items || menu.Index >= items.Length)
        {
            return Errno.EINVAL;
        }
        uint index = menu.Index;
        menu = default;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref menu.Name[0], items[index]);
        }
        return 0;
    }

    /// <summary>G_CTRL.</summary>
    public int Get(ref V4l2Control control)
    {
        int i = Find(control.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        if (_controls[i].IsClass)
        {
            return Errno.EACCES;
        }
        control.Value = Value(control.Id);
        return 0;
    }

    /// <summary>S_CTRL from the session of <paramref name="setter"/>; answers the value as set (clamped).</summary>
    public int Set(ref V4l2Control control, V4l2EventSubscriptions setter)
    {
        int i = Find(control.Id);
        if (i < 0)
        {
            return Errno.EINVAL;
        }
        int value = control.Value;
        int status = Validate(i, ref value);
        if (status != 0)
        {
            return status;
        }
        SetValue(i, value, setter);
        control.Value = value;
        return 0;
    }

    /// <summary>G/S/TRY_EXT_CTRLS (<paramref name="code"/> tells which) of value controls, all-or-nothing.</summary>
    public int Extended(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls, V4l2EventSubscriptions setter)
    {
        uint which = header.Which;
        bool isGet = code == V4l2IoctlCode.GExtCtrls;
        bool isSet = code == V4l2IoctlCode.SExtCtrls;
        bool defaults = which == V4l2Const.CtrlWhichDefVal;
        if (which == V4l2Const.CtrlWhichRequestVal || (defaults && !isGet))
        {
            header.ErrorIdx = header.Count;
            return Errno.EINVAL;
        }
        bool classFilter = which != V4l2Const.CtrlWhichCurVal && !defaults;
        // error_idx as the kernel's control framework reports it: G_EXT_CTRLS always answers count (nothing was
        // read), S_EXT_CTRLS answers count for a validation failure (nothing was written), TRY_EXT_CTRLS names
        // the offending control.
        uint failedAll = header.Count;
        // Validate every control first, so S_EXT_CTRLS is all-or-nothing.
        for (int k = 0; k < controls.Length; k++)
        {
            int i = Find(controls[k].Id);
            int status = i < 0 || (classFilter && (controls[k].Id & 0x0FFF0000) != which) ? Errno.EINVAL
                // Class controls are both write-only (nothing to get) and read-only (nothing to set).
                : _controls[i].IsClass ? Errno.EACCES
                : 0;
            if (status == 0 && !isGet)
            {
                int value = controls[k].Value;
                status = Validate(i, ref value);
                controls[k].Value = status == 0 ? value : controls[k].Value;
            }
            if (status != 0)
            {
                header.ErrorIdx = isGet || isSet ? failedAll : (uint)k;
                return status;
            }
        }
        for (int k = 0; k < controls.Length; k++)
        {
            int i = Find(controls[k].Id);
            if (isGet)
            {
                controls[k].Value64 = 0;
                controls[k].Value = defaults ? _controls[i].Default : Value(controls[k].Id);
            }
            else if (isSet)
            {
                SetValue(i, controls[k].Value, setter);
            }
        }
        header.ErrorIdx = 0;
        return 0;
    }

    // Checks (and clamps integer) values; ERANGE for a menu index outside min…max (as the kernel's control framework
    // answers), EACCES for class controls.
    private int Validate(int index, ref int value)
    {
        ref readonly V4l2ControlInfo c = ref _controls[index];
        // Class entries and read-only controls (a decoder's MIN_BUFFERS_FOR_CAPTURE) cannot be set: EACCES, as the
        // kernel's control framework answers.
        if (c.IsClass || (c.Flags & V4l2Const.CtrlFlagReadOnly) != 0)
        {
            return Errno.EACCES;
        }
        if (c.Type == V4l2Const.CtrlTypeMenu)
        {
            return value < c.Min || value > c.Max ? Errno.ERANGE : 0;
        }
        value = Math.Clamp(value, c.Min, c.Max);
        return 0;
    }

    // Sets a validated value and tells every session's subscriptions (the setter's hears it only with feedback).
    private void SetValue(int index, int value, V4l2EventSubscriptions setter)
    {
        V4l2EventSubscriptions[] listeners;
        lock (_lock)
        {
            if (_values[index] == value)
            {
                return;
            }
            _values[index] = value;
            listeners = _listeners.ToArray();
        }
        foreach (V4l2EventSubscriptions s in listeners)
        {
            s.ControlChanged(_controls[index], value, s == setter);
        }
    }
}
