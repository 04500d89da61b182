namespace Vmm.Core.Virtio;

/// <summary>Virtio device IDs (virtio 1.2 §5).</summary>
public enum VirtioDeviceType : ushort
{
    Console = 3,
    Rng = 4,
    Media = 48,
}
