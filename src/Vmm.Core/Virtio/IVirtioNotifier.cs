namespace Vmm.Core.Virtio;

/// <summary>What a device may ask of its transport once activated. Implemented by virtio-pci (MSI-X or INTx +
/// ISR) and by the embedded testbed; callable from any device thread.</summary>
public interface IVirtioNotifier
{
    /// <summary>Used entries were added to queue <paramref name="queueIndex"/>; interrupt the driver
    /// (the device has already applied EVENT_IDX suppression via the queue).</summary>
    void SignalUsedQueue(int queueIndex);

    void SignalConfigChange();

    /// <summary>The driver broke the protocol (a malformed ring): set DEVICE_NEEDS_RESET and tell the driver.</summary>
    void SignalNeedsReset(string reason);
}
