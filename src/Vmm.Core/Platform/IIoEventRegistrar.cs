using Vmm.Core.Events;

namespace Vmm.Core.Platform;

public enum IoEventSpace
{
    Pio,
    Mmio,
}

/// <summary>Binds a guest write to an eventfd in the hypervisor (KVM_IOEVENTFD), so a queue notify wakes a device
/// thread without a trip through the vCPU thread's exit handling.</summary>
public interface IIoEventRegistrar
{
    /// <param name="dataMatch">Only writes of this value signal, or any value when null.</param>
    /// <returns>A handle whose disposal unregisters the binding.</returns>
    IDisposable Register(IoEventSpace space, ulong address, uint length, EventFd eventFd, ulong? dataMatch = null);
}
