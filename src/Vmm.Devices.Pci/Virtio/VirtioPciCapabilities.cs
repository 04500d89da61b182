using System.Buffers.Binary;
using Vmm.Core.Memory;
using static Vmm.Devices.Pci.Virtio.VirtioPciLayout;

namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// The capability list of a virtio-pci function and the bytes of each entry: the vendor capabilities that locate
/// common, notify, ISR and device configuration in BAR0 (<c>virtio_pci_cap</c>, the notify one with its multiplier),
/// one shared-memory capability per region in BAR2 (<c>virtio_pci_cap64</c>, cfg_type 8), the PCI_CFG access window
/// (virtio 1.2 §4.1.4.9) and MSI-X. Records where the two capabilities with driver-writable fields landed, and reads
/// the window's target back out of them.
/// </summary>
internal sealed class VirtioPciCapabilities
{
    // Field offsets inside virtio_pci_cfg_cap, from the capability's first byte.
    private const int PciCfgBar = 4;
    private const int PciCfgOffset = 8;
    private const int PciCfgLength = 12;
    private const int PciCfgData = 16;

    private VirtioPciCapabilities(int pciCfgOffset, int msixOffset)
    {
        PciCfgDataOffset = pciCfgOffset + PciCfgData;
        MsixControlOffset = msixOffset + 2;
    }

    /// <summary>Configuration-space offset of pci_cfg_data, the window's 4 data bytes.</summary>
    public int PciCfgDataOffset { get; }

    /// <summary>Configuration-space offset of the MSI-X Message Control word.</summary>
    public int MsixControlOffset { get; }

    /// <summary>Appends the whole list to <paramref name="function"/>'s configuration space.</summary>
    /// <param name="function">The virtio-pci function.</param>
    /// <param name="msixVectors">Table size the MSI-X capability announces.</param>
    /// <param name="sharedMemory">The device's shared-memory regions.</param>
    /// <param name="sharedMemoryOffsets">Where each region starts in BAR2.</param>
    public static VirtioPciCapabilities AddTo(PciDevice function, int msixVectors,
        IReadOnlyList<SharedMemoryRegion> sharedMemory, ReadOnlySpan<ulong> sharedMemoryOffsets)
    {
        AddStructure(function, CfgTypeCommon, CommonOffset, CommonLength);
        AddStructure(function, CfgTypeNotify, NotifyOffset, NotifyLength, NotifyOffMultiplier);
        AddStructure(function, CfgTypeIsr, IsrOffset, IsrLength);
        AddStructure(function, CfgTypeDevice, DeviceConfigOffset, DeviceConfigLength);
        for (int i = 0; i < sharedMemory.Count; i++)
        {
            AddSharedMemory(function, sharedMemory[i].Id, sharedMemoryOffsets[i], sharedMemory[i].Size);
        }

        // VIRTIO_PCI_CAP_PCI_CFG: bar, offset, length and pci_cfg_data are driver-writable.
        Span<byte> pciCfgBody = stackalloc byte[NotifyCapLength - 2];
        pciCfgBody[0] = NotifyCapLength;
        pciCfgBody[1] = CfgTypePci;
        Span<byte> pciCfgWritable = stackalloc byte[NotifyCapLength - 2];
        pciCfgWritable[PciCfgBar - 2] = 0xFF;
        pciCfgWritable[(PciCfgOffset - 2)..(PciCfgData + 4 - 2)].Fill(0xFF);
        int pciCfg = function.AddCapability(PciConfigRegisters.CapabilityIdVendor, pciCfgBody, pciCfgWritable);

        Span<byte> msixBody = stackalloc byte[10];
        BinaryPrimitives.WriteUInt16LittleEndian(msixBody, (ushort)(msixVectors - 1));
        BinaryPrimitives.WriteUInt32LittleEndian(msixBody[2..], MsixTableOffset | Bar0Index);
        BinaryPrimitives.WriteUInt32LittleEndian(msixBody[6..], MsixPbaOffset | Bar0Index);
        Span<byte> msixWritable = stackalloc byte[10];
        msixWritable[1] = 0xC0; // Message Control bits 15 (enable) and 14 (function mask)
        int msix = function.AddCapability(PciConfigRegisters.CapabilityIdMsix, msixBody, msixWritable);
        return new VirtioPciCapabilities(pciCfg, msix);
    }

    /// <summary>The PCI_CFG window's target in <paramref name="config"/>, when it names a BAR0 access of width 1, 2
    /// or 4 inside the BAR.</summary>
    public bool TryGetPciCfgTarget(ReadOnlySpan<byte> config, out ulong barOffset, out int width)
    {
        int cap = PciCfgDataOffset - PciCfgData;
        byte bar = config[cap + PciCfgBar];
        barOffset = BinaryPrimitives.ReadUInt32LittleEndian(config[(cap + PciCfgOffset)..]);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(config[(cap + PciCfgLength)..]);
        width = (int)length;
        return bar == Bar0Index && length is 1 or 2 or 4 && barOffset + length <= Bar0Size && barOffset % length == 0;
    }

    private static void AddStructure(PciDevice function, byte cfgType, uint offset, uint length, uint? notifyMultiplier = null)
    {
        Span<byte> body = stackalloc byte[(notifyMultiplier is null ? CapLength : NotifyCapLength) - 2];
        body[0] = (byte)(body.Length + 2); // cap_len
        body[1] = cfgType;
        body[2] = Bar0Index;
        BinaryPrimitives.WriteUInt32LittleEndian(body[6..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body[10..], length);
        if (notifyMultiplier is uint m)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body[14..], m);
        }
        function.AddCapability(PciConfigRegisters.CapabilityIdVendor, body);
    }

    private static void AddSharedMemory(PciDevice function, byte id, ulong offset, ulong length)
    {
        Span<byte> body = stackalloc byte[Cap64Length - 2];
        body[0] = Cap64Length;
        body[1] = CfgTypeSharedMemory;
        body[2] = SharedMemoryBarIndex;
        body[3] = id;
        BinaryPrimitives.WriteUInt32LittleEndian(body[6..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(body[10..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[14..], (uint)(offset >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(body[18..], (uint)(length >> 32));
        function.AddCapability(PciConfigRegisters.CapabilityIdVendor, body);
    }
}
