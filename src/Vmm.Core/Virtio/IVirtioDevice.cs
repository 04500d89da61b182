using Vmm.Core.Memory;

namespace Vmm.Core.Virtio;

/// <summary>
/// A virtio device model, independent of transport (virtio-pci, the embedded testbed) and of hypervisor.
/// Lifecycle: constructed → (driver negotiates features, configures queues through the transport) →
/// <see cref="Activate"/> when the driver sets DRIVER_OK → <see cref="Reset"/> when the driver writes status 0
/// (or the VM stops), after which it may be activated again. Config-space accessors are called on vCPU threads;
/// queue processing happens on the device's own thread(s), started by <see cref="Activate"/>.
/// </summary>
public interface IVirtioDevice : IDisposable
{
    VirtioDeviceType DeviceType { get; }

    /// <summary>Largest size for each queue; the count is the number of queues.</summary>
    ReadOnlySpan<ushort> QueueMaxSizes { get; }

    /// <summary>Feature bits offered (device-specific plus the ring features the device supports; the transport
    /// adds VERSION_1).</summary>
    ulong AvailableFeatures { get; }

    /// <summary>Shared-memory regions (cfg_type 8) this device exposes; empty for most devices.</summary>
    IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions { get; }

    /// <summary>Reads device-specific configuration space; bytes past the end read as zero.</summary>
    void ReadConfig(uint offset, Span<byte> data);

    /// <summary>Writes device-specific configuration space; read-only fields ignore writes.</summary>
    void WriteConfig(uint offset, ReadOnlySpan<byte> data);

    /// <summary>Starts the device. The context's queues are configured and validated by the transport.</summary>
    void Activate(VirtioActivation activation);

    /// <summary>Stops the device's threads and forgets queue state; returns once no thread touches guest memory.</summary>
    void Reset();
}
