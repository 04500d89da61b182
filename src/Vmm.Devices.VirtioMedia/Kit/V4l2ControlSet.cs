using System.Buffers;
using System.Buffers.Binary;
using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Ioctls;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Kit;

/// <summary>One control as QUERY_EXT_CTRL describes it; <paramref name="Menu"/> names the items of a menu control.
/// <paramref name="Dims"/> makes it an array (up to four dimensions) of elements of its type: INTEGER, or the
/// compound element types U8, U16 and U32 (which are payload controls even without dimensions). Min, max, step and
/// default then apply to every element.</summary>
public readonly record struct V4l2ControlInfo(uint Id, uint Type, string Name, int Min, int Max, int Step, int Default, uint Flags,
    string[]? Menu = null, uint[]? Dims = null)
{
    /// <summary>True for a control whose value is a payload (G/S_EXT_CTRLS with a pointer and a size), not a value.</summary>
    public bool HasPayload => Dims is not null || Type >= V4l2Const.CtrlTypeCompoundTypes;

    /// <summary>Bytes per element (4 for value controls).</summary>
    public uint ElemSize => Type switch
    {
        V4l2Const.CtrlTypeU8 => 1,
        V4l2Const.CtrlTypeU16 => 2,
        _ => 4,
    };

    /// <summary>Number of elements (1 for value controls).</summary>
    public uint Elems
    {
        get
        {
            uint n = 1;
            foreach (uint d in Dims ?? [])
            {
                n *= d;
            }
            return n;
        }
    }

    /// <summary>Bytes of the whole payload (elements × element size).</summary>
    public uint PayloadSize => Elems * ElemSize;

    /// <summary>True when it cannot be set (class controls too).</summary>
    public bool IsReadOnly => (Flags & V4l2Const.CtrlFlagReadOnly) != 0;

    /// <summary>The flags QUERYCTRL and QUERY_EXT_CTRL report: the control's, plus HAS_PAYLOAD for a payload one.</summary>
    public uint ReportedFlags => Flags | (HasPayload ? V4l2Const.CtrlFlagHasPayload : 0);

    /// <summary>The class control that heads a control class (<paramref name="ctrlClass"/> | 1): it only names the
    /// class for enumeration and is neither read nor written.</summary>
    public static V4l2ControlInfo Class(uint ctrlClass, string name) =>
        new(ctrlClass | 1, V4l2Const.CtrlTypeCtrlClass, name, 0, 0, 0, 0, V4l2Const.CtrlFlagReadOnly | V4l2Const.CtrlFlagWriteOnly);

    /// <summary>True for a class control.</summary>
    public bool IsClass => Type == V4l2Const.CtrlTypeCtrlClass;
}

/// <summary>
/// A device's controls, as v4l2-ctrls keeps them: integer, menu and class controls, and payload controls (arrays of
/// INTEGER, U8, U16 or U32 elements); the values belong to the device, not to a file handle. It answers QUERYCTRL,
/// QUERY_EXT_CTRL (NEXT_CTRL and NEXT_COMPOUND enumeration, element size, count and dimensions), QUERYMENU,
/// G/S_CTRL and G/S/TRY_EXT_CTRLS (payloads through guest pages) with the kernel's error_idx rules, and sends control
/// events to every session's <see cref="V4l2EventSubscriptions"/> when a value changes. Thread-safe.
/// </summary>
public sealed class V4l2ControlSet
{
    // Largest payload a control may have (an array of a few thousand elements, e.g. a 64×64 LUT of U32).
    private const uint MaxPayloadBytes = 64 << 10;

    private readonly V4l2ControlInfo[] _controls;
    private readonly int[] _values;
    private readonly byte[]?[] _payloads;
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
        _payloads = new byte[]?[controls.Length];
        for (int i = 0; i < controls.Length; i++)
        {
            V4l2ControlInfo c = controls[i];
            _values[i] = c.Default;
            if (!c.HasPayload)
            {
                continue;
            }
            if (c.Type is not (V4l2Const.CtrlTypeInteger or V4l2Const.CtrlTypeU8 or V4l2Const.CtrlTypeU16 or V4l2Const.CtrlTypeU32)
                || c.Dims is { Length: 0 or > 4 } || c.Dims is { } d && Array.IndexOf(d, 0u) >= 0 || c.PayloadSize > MaxPayloadBytes)
            {
                throw new ArgumentException($"control 0x{c.Id:x8}: arrays of INTEGER, U8, U16 or U32 of 1 to 4 non-zero dimensions up to {MaxPayloadBytes} bytes only", nameof(controls));
            }
            _payloads[i] = new byte[c.PayloadSize];
            FillDefault(c, _payloads[i]);
        }
    }

    private static void FillDefault(in V4l2ControlInfo c, Span<byte> payload)
    {
        for (int e = 0; e < c.Elems; e++)
        {
            WriteElement(c, payload, e, c.Default);
        }
    }

    private static int ReadElement(in V4l2ControlInfo c, ReadOnlySpan<byte> payload, int e) => c.ElemSize switch
    {
        1 => payload[e],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(payload[(2 * e)..]),
        _ => BinaryPrimitives.ReadInt32LittleEndian(payload[(4 * e)..]),
    };

    private static void WriteElement(in V4l2ControlInfo c, Span<byte> payload, int e, int value)
    {
        switch (c.ElemSize)
        {
            case 1:
                payload[e] = (byte)value;
                break;
            case 2:
                BinaryPrimitives.WriteUInt16LittleEndian(payload[(2 * e)..], (ushort)value);
                break;
            default:
                BinaryPrimitives.WriteInt32LittleEndian(payload[(4 * e)..], value);
                break;
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
        // As the kernel's QUERYCTRL: range and default only for the value types (an INTEGER array keeps them).
        if (c.Type < V4l2Const.CtrlTypeCompoundTypes)
        {
            query.Minimum = c.Min;
            query.Maximum = c.Max;
            query.Step = c.Step;
            query.DefaultValue = c.Default;
        }
        query.Flags = c.ReportedFlags;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], c.Name);
        }
        return 0;
    }

    /// <summary>QUERY_EXT_CTRL: as <see cref="Query"/>, with the range of every type, and element size, count and
    /// dimensions.</summary>
    public int QueryExt(ref V4l2QueryExtCtrl query)
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
        query.Step = (ulong)c.Step;
        query.DefaultValue = c.Default;
        query.Flags = c.ReportedFlags;
        query.ElemSize = c.ElemSize;
        query.Elems = c.Elems;
        unsafe
        {
            // Safe: a ref to the first byte of a fixed 32-byte field; the span covers exactly that field.
            V4l2Text.Write(ref query.Name[0], c.Name);
            if (c.Dims is { } dims)
            {
                query.NrOfDims = (uint)dims.Length;
                for (int d = 0; d < dims.Length; d++)
                {
                    // Safe: at most four dimensions (checked at construction), the fixed array's size.
                    query.Dims[d] = dims[d];
                }
            }
        }
        return 0;
    }

    // Exact id, or the first control whose id is greater: with NEXT_CTRL a value control, with NEXT_COMPOUND a
    // payload one (arrays included), with both either (the kernel's enumeration rules).
    private int FindForQuery(uint id)
    {
        bool next = (id & V4l2Const.CtrlFlagNextCtrl) != 0;
        bool nextCompound = (id & V4l2Const.CtrlFlagNextCompound) != 0;
        uint bare = id & V4l2Const.CtrlIdMask;
        if (!next && !nextCompound)
        {
            return Find(id);
        }
        for (int i = 0; i < _controls.Length; i++)
        {
            if (_controls[i].Id > bare && (_controls[i].HasPayload ? nextCompound : next))
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
        if (_controls[i].HasPayload)
        {
            return Errno.EINVAL; // a payload goes through G_EXT_CTRLS only
        }
        control.Value = Value(control.Id);
        return 0;
    }

    /// <summary>S_CTRL from the session of <paramref name="setter"/>; answers the value as set (clamped).</summary>
    public int Set(ref V4l2Control control, V4l2EventSubscriptions setter)
    {
        int i = Find(control.Id);
        if (i < 0 || _controls[i].HasPayload)
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

    /// <summary>G/S/TRY_EXT_CTRLS (<paramref name="code"/> tells which), all-or-nothing. Payload controls read and
    /// write their elements through <paramref name="payloads"/> (each control's validated guest scatter list) in
    /// <paramref name="memory"/>: a size too small is ENOSPC with the size needed for G (the application's way of
    /// asking) and EFAULT for S/TRY; S and TRY write the values as adjusted (each element clamped) back.</summary>
    public int Extended(V4l2IoctlCode code, ref V4l2ExtControls header, Span<V4l2ExtControl> controls, V4l2EventSubscriptions setter,
        in SharedPagesLists payloads = default, GuestMemory? memory = null)
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
        // the offending control. A payload of the wrong size fails in the preparation step, which names the
        // control for all three.
        uint failedAll = header.Count;
        // Payloads read from the guest (S/TRY), each control's at its offset; rented, so no request allocates.
        int payloadBytes = 0;
        for (int k = 0; k < controls.Length; k++)
        {
            int i = Find(controls[k].Id);
            if (i >= 0 && _controls[i].HasPayload)
            {
                uint needed = _controls[i].PayloadSize;
                if (controls[k].Size < needed || memory is null || payloads.PlaneCount != controls.Length)
                {
                    controls[k].Size = needed;
                    header.ErrorIdx = (uint)k;
                    return isGet ? Errno.ENOSPC : Errno.EFAULT;
                }
                payloadBytes += (int)needed;
            }
        }
        byte[]? scratch = payloadBytes == 0 ? null : ArrayPool<byte>.Shared.Rent(payloadBytes);
        try
        {
            // Validate every control first, so S_EXT_CTRLS is all-or-nothing.
            int offset = 0;
            for (int k = 0; k < controls.Length; k++)
            {
                int i = Find(controls[k].Id);
                int status = i < 0 || (classFilter && (controls[k].Id & 0x0FFF0000) != which) ? Errno.EINVAL
                    // Class controls are both write-only (nothing to get) and read-only (nothing to set).
                    : _controls[i].IsClass ? Errno.EACCES
                    : 0;
                if (status == 0 && !isGet && _controls[i].HasPayload)
                {
                    Span<byte> value = scratch.AsSpan(offset, (int)_controls[i].PayloadSize);
                    offset += value.Length;
                    status = !GuestPages.CopyFrom(memory!, payloads.Plane(k), value) ? Errno.EFAULT : ValidatePayload(i, value);
                }
                else if (status == 0 && !isGet)
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
            offset = 0;
            for (int k = 0; k < controls.Length; k++)
            {
                int i = Find(controls[k].Id);
                if (_controls[i].HasPayload)
                {
                    int status = isGet ? GetPayload(i, defaults, memory!, payloads.Plane(k)) : SetPayload(i, scratch.AsSpan(offset, (int)_controls[i].PayloadSize), isSet, setter, memory!, payloads.Plane(k));
                    offset += isGet ? 0 : (int)_controls[i].PayloadSize;
                    controls[k].Size = _controls[i].PayloadSize;
                    if (status != 0)
                    {
                        header.ErrorIdx = (uint)k;
                        return status;
                    }
                }
                else if (isGet)
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
        finally
        {
            if (scratch is not null)
            {
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }
    }

    // Clamps every element of a payload read from the guest to the control's range (as the kernel rounds each
    // element of an array to its range); EACCES for a read-only control.
    private int ValidatePayload(int index, Span<byte> value)
    {
        ref readonly V4l2ControlInfo c = ref _controls[index];
        if (c.IsReadOnly)
        {
            return Errno.EACCES;
        }
        for (int e = 0; e < c.Elems; e++)
        {
            WriteElement(c, value, e, Math.Clamp(ReadElement(c, value, e), c.Min, c.Max));
        }
        return 0;
    }

    // G_EXT_CTRLS of a payload control: its current (or default) elements into the guest's pages.
    private int GetPayload(int index, bool defaults, GuestMemory memory, ReadOnlySpan<SgEntry> pages)
    {
        ref readonly V4l2ControlInfo c = ref _controls[index];
        if (defaults)
        {
            Span<byte> value = c.PayloadSize <= 1024 ? stackalloc byte[(int)c.PayloadSize] : new byte[c.PayloadSize];
            FillDefault(c, value);
            return GuestPages.CopyTo(memory, pages, value) ? 0 : Errno.EFAULT;
        }
        lock (_lock)
        {
            return GuestPages.CopyTo(memory, pages, _payloads[index]) ? 0 : Errno.EFAULT;
        }
    }

    // S/TRY_EXT_CTRLS of a payload control: the adjusted elements back into the guest's pages; for S also stored,
    // and a change tells every session's subscriptions (payload controls' events carry no value).
    private int SetPayload(int index, ReadOnlySpan<byte> value, bool store, V4l2EventSubscriptions setter, GuestMemory memory, ReadOnlySpan<SgEntry> pages)
    {
        if (!GuestPages.CopyTo(memory, pages, value))
        {
            return Errno.EFAULT;
        }
        if (!store)
        {
            return 0;
        }
        V4l2EventSubscriptions[] listeners;
        lock (_lock)
        {
            if (value.SequenceEqual(_payloads[index]))
            {
                return 0;
            }
            value.CopyTo(_payloads[index]);
            listeners = _listeners.ToArray();
        }
        Tell(listeners, index, 0, setter);
        return 0;
    }

    /// <summary>The current elements of payload control <paramref name="id"/> (a copy), or null for another control.</summary>
    public byte[]? Payload(uint id)
    {
        int i = Find(id);
        lock (_lock)
        {
            return i < 0 ? null : _payloads[i]?.ToArray();
        }
    }

    // Checks (and clamps integer) values; ERANGE for a menu index outside min…max (as the kernel's control framework
    // answers), EACCES for class controls.
    private int Validate(int index, ref int value)
    {
        ref readonly V4l2ControlInfo c = ref _controls[index];
        // Class entries and read-only controls (a decoder's MIN_BUFFERS_FOR_CAPTURE) cannot be set: EACCES, as the
        // kernel's control framework answers.
        if (c.IsReadOnly)
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
        Tell(listeners, index, value, setter);
    }

    // A control changed (taken from the listeners under the lock, told outside it): every session's subscriptions
    // hear it, the setter's only with feedback. A payload control's event carries no value (0), as the kernel's.
    private void Tell(V4l2EventSubscriptions[] listeners, int index, int value, V4l2EventSubscriptions setter)
    {
        foreach (V4l2EventSubscriptions s in listeners)
        {
            s.ControlChanged(_controls[index], value, s == setter);
        }
    }
}
