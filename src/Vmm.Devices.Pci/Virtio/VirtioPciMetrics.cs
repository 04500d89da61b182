using System.Diagnostics.Metrics;
using Vmm.Core.Metrics;
using Vmm.Core.Virtio;

namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// <c>vmm.virtio.interrupts</c>: interrupts the virtio-pci transport raised for its device (used-buffer and
/// configuration-change notifications: an MSI-X vector fired or left pending while masked, or INTx asserted),
/// tagged <c>type</c> (the device type: media, rng, console). Driver kicks are not counted here: they reach the
/// device's thread through KVM ioeventfds without passing through the VMM's exit path.
/// </summary>
internal static class VirtioPciMetrics
{
    public const string InterruptsName = "vmm.virtio.interrupts";
    public const string TypeTag = "type";

    private static readonly Counter<long> Interrupts = VmmMeter.Meter.CreateCounter<long>(InterruptsName, "{interrupt}",
        "Interrupts virtio-pci raised for a device (MSI-X or INTx), by device type");

    /// <summary>The tag for a transport around a device of <paramref name="type"/>; built once per transport.</summary>
    public static KeyValuePair<string, object?> TagFor(VirtioDeviceType type) =>
        new(TypeTag, Enum.IsDefined(type) ? type.ToString().ToLowerInvariant() : $"type{(ushort)type}");

    public static void CountInterrupt(in KeyValuePair<string, object?> typeTag) => Interrupts.Add(1, typeTag);
}
