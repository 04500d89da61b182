namespace Vmm.Devices.Pci;

/// <summary>Type-0 configuration header offsets and bits (PCI Local Bus 3.0 §6.1).</summary>
public static class PciConfigRegisters
{
    public const int VendorId = 0x00;
    public const int DeviceId = 0x02;
    public const int Command = 0x04;
    public const int Status = 0x06;
    public const int RevisionId = 0x08;
    public const int ClassCode = 0x09;
    public const int CacheLineSize = 0x0C;
    public const int LatencyTimer = 0x0D;
    public const int HeaderType = 0x0E;
    public const int Bar0 = 0x10;
    public const int SubsystemVendorId = 0x2C;
    public const int SubsystemId = 0x2E;
    public const int ExpansionRom = 0x30;
    public const int CapabilitiesPointer = 0x34;
    public const int InterruptLine = 0x3C;
    public const int InterruptPin = 0x3D;

    /// <summary>Size of the conventional configuration space (what port 0xCF8/0xCFC reaches).</summary>
    public const int ConfigSpaceSize = 256;
    /// <summary>Size of a function's ECAM window (extended configuration space).</summary>
    public const int ExtendedConfigSpaceSize = 4096;

    public const ushort CommandIoSpace = 1 << 0;
    public const ushort CommandMemorySpace = 1 << 1;
    public const ushort CommandBusMaster = 1 << 2;
    public const ushort CommandParityError = 1 << 6;
    public const ushort CommandSerr = 1 << 8;
    public const ushort CommandIntxDisable = 1 << 10;

    public const ushort StatusIntx = 1 << 3;
    public const ushort StatusCapabilitiesList = 1 << 4;

    public const uint BarMemory64 = 0b100;
    public const uint BarPrefetchable = 0b1000;

    public const byte CapabilityIdVendor = 0x09;
    public const byte CapabilityIdMsix = 0x11;

    /// <summary>What reads of a missing device or function return.</summary>
    public const uint AllOnes = 0xFFFF_FFFF;
}
