namespace Vmm.Core.Platform;

/// <summary>Installs host memory at a guest-physical address (a KVM memory slot), for shared-memory BARs.</summary>
public interface IGuestMemoryMapper
{
    /// <returns>A handle whose disposal removes the mapping (the BAR moved or the VM stops).</returns>
    IDisposable Map(ulong guestPhysicalAddress, nint hostAddress, ulong size);
}
