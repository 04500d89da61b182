using Vmm.Core.Virtio;

namespace Vmm.Devices.VirtioMedia.Device;

public sealed partial class VirtioMediaDevice
{
    /// <summary>Starts the device on real virtqueues.</summary>
    public void Activate(VirtioActivation activation)
    {
        // The split-virtqueue implementation (src/Vmm.Core/Virtio/Queues, branch pci) is not available yet; until it
        // is merged the device runs only in the testbed's direct mode (commands through CommandProcessor).
        _ = activation;
        throw new NotSupportedException("virtio-media queue processing needs the split virtqueue from the pci branch");
    }

    public void Reset()
    {
        StopAll();
    }
}
