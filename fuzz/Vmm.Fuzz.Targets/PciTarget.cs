using System.Buffers.Binary;
using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.Pci;
using Vmm.Devices.Pci.Virtio;
using Vmm.Devices.Virtio.Rng;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Device;
using static Vmm.Devices.Pci.Virtio.VirtioPciLayout;

namespace Vmm.Fuzz.Targets;

/// <summary>
/// The virtio-pci transport with a real device behind it (virtio-rng, or the virtio-media device with its
/// shared-memory BAR), on a fresh PCI root and buses per input: port 0xCF8/0xCFC and ECAM configuration accesses at
/// any offset and width, BAR0 accesses (common config, ISR, device config, notify, MSI-X table and PBA) at any
/// offset and width, raw MMIO anywhere, guest RAM writes (ring contents), device-side signals, and a driver
/// bring-up macro that reaches DRIVER_OK in one operation.
/// <para>Findings: any exception (on the vCPU path or, through DEVICE_NEEDS_RESET with a "stopped" reason, on the
/// device thread); DRIVER_OK without FEATURES_OK; accepted features that were not offered or lack VERSION_1.</para>
/// </summary>
public static class PciTarget
{
    private const ulong RamSize = 1 << 20;
    private const ulong RingBase = 0x10000;

    private static readonly GuestMemory Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), RamSize));

    public static void Run(ReadOnlySpan<byte> data)
    {
        Memory.GetSpan(new GuestAddress(0), RamSize).Clear();
        var input = new FuzzInput(data);
        byte setup = input.U8();
        var pio = new IoBus("pio");
        var mmio = new IoBus("mmio");
        PciRoot root = PciRoot.CreateX86(mmio, RamSize, gsi => new NullInterruptLine(gsi));
        root.AttachTo(pio, mmio);
        IVirtioDevice device = (setup & 2) != 0
            ? VirtioMediaDevice.Create(new TestPatternOptions { Width = 160, Height = 120, SharedMemorySize = 1 << 20 })
            : new VirtioRng();
        using var pci = new VirtioPciDevice(device, Memory, new NullMsiController(),
            (setup & 1) != 0 ? new NullIoEventRegistrar() : null, new NullMemoryMapper());
        int slot = root.Add(pci);
        var notifier = (IVirtioNotifier)pci;
        Span<byte> buffer = stackalloc byte[8];
        for (int step = 0; step < 256 && !input.IsEmpty; step++)
        {
            switch (input.U8() % 12)
            {
                case 0: // CONFIG_ADDRESS (or anything at 0xCF8..0xCFB) at any width
                {
                    (int offset, int width) = PortAccess(ref input);
                    BinaryPrimitives.WriteUInt32LittleEndian(buffer, input.U32());
                    pio.Write(PciConfigIo.BasePort + (ulong)offset, buffer[..width]);
                    break;
                }
                case 1: // CONFIG_DATA read at any offset and width
                {
                    (int offset, int width) = PortAccess(ref input);
                    pio.Read(PciConfigIo.BasePort + 4 + (ulong)offset, buffer[..width]);
                    break;
                }
                case 2:
                {
                    (int offset, int width) = PortAccess(ref input);
                    BinaryPrimitives.WriteUInt32LittleEndian(buffer, input.U32());
                    pio.Write(PciConfigIo.BasePort + 4 + (ulong)offset, buffer[..width]);
                    break;
                }
                case 3: // configuration write of our function through 0xCF8/0xCFC, as a guest does
                {
                    int offset = input.U8();
                    int width = Width(input.U8(), 4);
                    uint value = input.U32();
                    SelectConfig(pio, slot, offset, buffer);
                    BinaryPrimitives.WriteUInt32LittleEndian(buffer, value);
                    pio.Write(PciConfigIo.BasePort + 4 + (ulong)(offset & 3), buffer[..width]);
                    break;
                }
                case 4:
                {
                    int offset = input.U8();
                    int width = Width(input.U8(), 4);
                    SelectConfig(pio, slot, offset, buffer);
                    pio.Read(PciConfigIo.BasePort + 4 + (ulong)(offset & 3), buffer[..width]);
                    break;
                }
                case 5: // ECAM: any offset of the 4 KiB extended space of any slot, any width, either direction
                {
                    byte target = input.U8();
                    int fnSlot = target < 0xE0 ? slot : target & 0x1F;
                    int function = target >= 0xF8 ? target & 7 : 0;
                    ulong address = X86Layout.PciEcamStart + ((ulong)fnSlot << 15) + ((ulong)function << 12) + (ulong)(input.U16() % 0x1000);
                    int width = Width(input.U8(), 8);
                    Access(mmio, address, width, ref input, buffer);
                    break;
                }
                case 6: // BAR0 (wherever the guest moved it), any offset and width
                {
                    ulong offset = input.U16() % (Bar0Size + 0x100);
                    int width = Width(input.U8(), 8);
                    Access(mmio, pci.GetBarAddress(0) + offset, width, ref input, buffer);
                    break;
                }
                case 7: // raw MMIO anywhere (BAR2, holes, the ECAM edges)
                {
                    ulong address = input.U64();
                    int width = Width(input.U8(), 8);
                    Access(mmio, address, width, ref input, buffer);
                    break;
                }
                case 8:
                    BringUp(pio, mmio, pci, slot, ref input, buffer);
                    break;
                case 9: // guest RAM near the rings: descriptors, avail entries, buffers
                {
                    ulong address = RingBase + input.U16();
                    ReadOnlySpan<byte> bytes = input.Bytes(input.U8());
                    if (Memory.TryGetSpan(new GuestAddress(address), (ulong)bytes.Length, out Span<byte> target))
                    {
                        bytes.CopyTo(target);
                    }
                    break;
                }
                case 10: // what the device thread may signal at any time
                    switch (input.U8() % 3)
                    {
                        case 0: notifier.SignalUsedQueue(input.U8() % 4); break;
                        case 1: notifier.SignalConfigChange(); break;
                        default: notifier.SignalNeedsReset("fuzz"); break;
                    }
                    break;
                case 11: // status 0: device reset through the common configuration
                    buffer[0] = 0;
                    mmio.Write(pci.GetBarAddress(0) + Common.DeviceStatus, buffer[..1]);
                    break;
            }
            Check(pci);
            FuzzTrace.Write($"status {pci.Status}, queue 0 {pci.Queues[0].Error}, msix {pci.Msix.Enabled}, reset reason {pci.NeedsResetReason}");
        }
    }

    private static (int Offset, int Width) PortAccess(ref FuzzInput input)
    {
        byte b = input.U8();
        int width = Width(b, 4);
        return ((b >> 2) & 3, width);
    }

    /// <summary>1, 2, 4 (or 8) bytes; other widths (3, 5…) occasionally, as a misbehaving emulation could send.</summary>
    private static int Width(byte b, int max) => (b & 0x80) != 0 ? 1 + (b & 7) % max : Math.Min(max, 1 << (b & 3));

    private static void SelectConfig(IoBus pio, int slot, int offset, Span<byte> buffer)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, 0x8000_0000u | ((uint)slot << 11) | ((uint)offset & 0xFC));
        pio.Write(PciConfigIo.BasePort, buffer[..4]);
    }

    private static void Access(IoBus bus, ulong address, int width, ref FuzzInput input, scoped Span<byte> buffer)
    {
        if ((input.U8() & 1) != 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, input.U64());
            bus.Write(address, buffer[..width]);
        }
        else
        {
            bus.Read(address, buffer[..width]);
        }
    }

    /// <summary>The Linux driver's probe in one step: memory decoding and bus mastering on, optionally MSI-X,
    /// ACKNOWLEDGE|DRIVER, features (offered or fuzzed), FEATURES_OK, every queue set up in RAM, DRIVER_OK.</summary>
    private static void BringUp(IoBus pio, IoBus mmio, VirtioPciDevice pci, int slot, ref FuzzInput input, scoped Span<byte> buffer)
    {
        byte mode = input.U8();
        SelectConfig(pio, slot, PciConfigRegisters.Command, buffer);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, PciConfigRegisters.CommandMemorySpace | PciConfigRegisters.CommandBusMaster);
        pio.Write(PciConfigIo.BasePort + 4, buffer[..2]);
        ulong bar = pci.GetBarAddress(0);
        void Write(ulong offset, ulong value, int width, Span<byte> b)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(b, value);
            mmio.Write(bar + offset, b[..width]);
        }
        Write(Common.DeviceStatus, (ulong)(DeviceStatus.Acknowledge | DeviceStatus.Driver), 1, buffer);
        ulong features = (mode & 1) != 0 ? input.U64() : pci.OfferedFeatures;
        Write(Common.DriverFeatureSelect, 0, 4, buffer);
        Write(Common.DriverFeature, (uint)features, 4, buffer);
        Write(Common.DriverFeatureSelect, 1, 4, buffer);
        Write(Common.DriverFeature, features >> 32, 4, buffer);
        Write(Common.DeviceStatus, (ulong)(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk), 1, buffer);
        for (int q = 0; q < pci.Queues.Count; q++)
        {
            ulong area = RingBase + 0x4000UL * (ulong)q;
            Write(Common.QueueSelect, (ulong)q, 2, buffer);
            Write(Common.QueueSize, (mode & 2) != 0 ? input.U16() : 16UL, 2, buffer);
            Write(Common.QueueMsixVector, (ulong)q, 2, buffer);
            Write(Common.QueueDesc, area, 8, buffer);
            Write(Common.QueueDriver, area + 0x1000, 8, buffer);
            Write(Common.QueueDevice, area + 0x2000, 8, buffer);
            Write(Common.QueueEnable, 1, 2, buffer);
        }
        Write(Common.ConfigMsixVector, (ulong)pci.Queues.Count, 2, buffer);
        if ((mode & 4) != 0)
        {
            // MSI-X enable: Message Control of the MSI-X capability, found by walking the list as Linux does.
            int cap = FindCapability(pci, PciConfigRegisters.CapabilityIdMsix);
            if (cap > 0)
            {
                SelectConfig(pio, slot, cap, buffer);
                BinaryPrimitives.WriteUInt16LittleEndian(buffer, 0x8000);
                pio.Write(PciConfigIo.BasePort + 4 + 2, buffer[..2]);
            }
        }
        Write(Common.DeviceStatus, (ulong)(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk), 1, buffer);
    }

    private static int FindCapability(PciDevice device, byte id)
    {
        ReadOnlySpan<byte> config = device.ConfigSpace;
        int pos = config[PciConfigRegisters.CapabilitiesPointer];
        for (int ttl = 48; ttl > 0 && pos >= 0x40 && pos < 0xFF; ttl--)
        {
            if (config[pos] == id)
            {
                return pos;
            }
            pos = config[pos + 1];
        }
        return -1;
    }

    private static void Check(VirtioPciDevice pci)
    {
        DeviceStatus status = pci.Status;
        if ((status & DeviceStatus.DriverOk) != 0 && (status & DeviceStatus.FeaturesOk) == 0)
        {
            throw new FuzzInvariantException($"status {status}: DRIVER_OK without FEATURES_OK");
        }
        if ((status & DeviceStatus.FeaturesOk) != 0
            && ((pci.DriverFeatures & ~pci.OfferedFeatures) != 0 || (pci.DriverFeatures & VirtioFeatures.Version1) == 0))
        {
            throw new FuzzInvariantException($"FEATURES_OK with features 0x{pci.DriverFeatures:x} (offered 0x{pci.OfferedFeatures:x})");
        }
        if (pci.NeedsResetReason is { } reason && reason.Contains("stopped", StringComparison.Ordinal))
        {
            throw new FuzzInvariantException($"device thread failed: {reason}");
        }
    }
}
