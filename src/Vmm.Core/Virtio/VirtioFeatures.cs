namespace Vmm.Core.Virtio;

/// <summary>Transport/ring feature bits common to all devices (virtio 1.2 §6).</summary>
public static class VirtioFeatures
{
    public const int IndirectDescBit = 28;
    public const int EventIdxBit = 29;
    public const int Version1Bit = 32;
    public const int AccessPlatformBit = 33;
    public const int RingPackedBit = 34;

    public const ulong IndirectDesc = 1UL << IndirectDescBit;
    public const ulong EventIdx = 1UL << EventIdxBit;
    public const ulong Version1 = 1UL << Version1Bit;
}
