namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// The virtio-pci modern constants (virtio 1.2 §4.1) and where this transport puts each structure: BAR0 (32-bit
/// MMIO, 32 KiB) holds common config, ISR, device config, notify area and the MSI-X table/PBA; BAR2 (64-bit
/// prefetchable) holds the shared-memory regions, mapped as host memory.
/// </summary>
public static class VirtioPciLayout
{
    public const ushort VendorId = 0x1AF4;
    /// <summary>Modern (non-transitional) device IDs are 0x1040 + virtio device type.</summary>
    public const ushort DeviceIdBase = 0x1040;
    /// <summary>Revision ≥ 1 marks a non-transitional device.</summary>
    public const byte Revision = 1;

    public const byte CfgTypeCommon = 1;
    public const byte CfgTypeNotify = 2;
    public const byte CfgTypeIsr = 3;
    public const byte CfgTypeDevice = 4;
    public const byte CfgTypePci = 5;
    public const byte CfgTypeSharedMemory = 8;

    /// <summary><c>struct virtio_pci_cap</c> is 16 bytes, the notify cap 20, <c>virtio_pci_cap64</c> 24.</summary>
    public const int CapLength = 16;
    public const int NotifyCapLength = 20;
    public const int Cap64Length = 24;

    public const int Bar0Index = 0;
    public const int SharedMemoryBarIndex = 2;
    public const ulong Bar0Size = 0x8000;
    public const uint CommonOffset = 0x0000;
    public const uint CommonLength = 0x40;
    public const uint IsrOffset = 0x1000;
    public const uint IsrLength = 1;
    public const uint DeviceConfigOffset = 0x2000;
    public const uint DeviceConfigLength = 0x1000;
    public const uint NotifyOffset = 0x3000;
    public const uint NotifyOffMultiplier = 4;
    public const uint NotifyLength = 0x1000;
    public const uint MsixTableOffset = 0x4000;
    public const uint MsixPbaOffset = 0x6000;

    /// <summary>MSI-X "no vector" value for config_msix_vector/queue_msix_vector.</summary>
    public const ushort NoVector = 0xFFFF;

    public const byte IsrQueue = 1;
    public const byte IsrConfig = 2;

    /// <summary><c>struct virtio_pci_common_cfg</c> field offsets (plus the 1.2 queue_notify_data/queue_reset).</summary>
    public static class Common
    {
        public const int DeviceFeatureSelect = 0x00;
        public const int DeviceFeature = 0x04;
        public const int DriverFeatureSelect = 0x08;
        public const int DriverFeature = 0x0C;
        public const int ConfigMsixVector = 0x10;
        public const int NumQueues = 0x12;
        public const int DeviceStatus = 0x14;
        public const int ConfigGeneration = 0x15;
        public const int QueueSelect = 0x16;
        public const int QueueSize = 0x18;
        public const int QueueMsixVector = 0x1A;
        public const int QueueEnable = 0x1C;
        public const int QueueNotifyOff = 0x1E;
        public const int QueueDesc = 0x20;
        public const int QueueDriver = 0x28;
        public const int QueueDevice = 0x30;
        public const int QueueNotifyData = 0x38;
        public const int QueueReset = 0x3A;
    }
}
