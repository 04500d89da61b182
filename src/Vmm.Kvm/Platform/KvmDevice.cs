using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>An in-kernel device made with KVM_CREATE_DEVICE (the arm64 vGIC and ITS), configured through its
/// attributes. The VM owns it and closes its fd when disposed.</summary>
internal sealed unsafe class KvmDevice(KvmFd fd, string name) : IDisposable
{
    public void SetAddress(uint group, ulong attribute, ulong address, string what)
    {
        ulong value = address;
        SetAttribute(group, attribute, (ulong)&value, $"{what} at 0x{address:x}");
    }

    public void SetUInt32(uint group, ulong attribute, uint value, string what)
    {
        uint v = value;
        SetAttribute(group, attribute, (ulong)&v, $"{what} = {value}");
    }

    /// <summary>KVM_SET_DEVICE_ATTR; <paramref name="valueAddress"/> points at the value (0 for none). Callers pass
    /// the address of a local that outlives the call.</summary>
    public void SetAttribute(uint group, ulong attribute, ulong valueAddress, string what)
    {
        var attr = new KvmDeviceAttr { Group = group, Attr = attribute, Addr = valueAddress };
        fd.Ioctl(KvmIoctls.SetDeviceAttr, &attr, $"KVM_SET_DEVICE_ATTR({name}: {what})");
    }

    public void Dispose() => fd.Dispose();
}
