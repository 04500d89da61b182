using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Cpu;

/// <summary>The host CPU's vendor, as CPUID leaf 0 names it (the leaf KVM passes through unchanged).</summary>
public enum CpuVendor
{
    Unknown,
    Intel,
    Amd,
    Hygon,
}

public static class CpuVendorId
{
    /// <summary>The vendor named by leaf 0's EBX, EDX, ECX (in that order: "GenuineIntel", "AuthenticAMD", ...).</summary>
    public static CpuVendor FromLeaf0(uint ebx, uint edx, uint ecx) => (ebx, edx, ecx) switch
    {
        (0x756E6547, 0x49656E69, 0x6C65746E) => CpuVendor.Intel, // "Genu" "ineI" "ntel"
        (0x68747541, 0x69746E65, 0x444D4163) => CpuVendor.Amd,   // "Auth" "enti" "cAMD"
        (0x6F677948, 0x6E65476E, 0x656E6975) => CpuVendor.Hygon, // "Hygo" "nGen" "uine"
        _ => CpuVendor.Unknown,
    };

    /// <summary>The vendor in a CPUID table, from its leaf 0.</summary>
    public static CpuVendor Of(ReadOnlySpan<KvmCpuidEntry2> entries) =>
        CpuidRules.Find(entries, 0) is { } leaf0 ? FromLeaf0(leaf0.Ebx, leaf0.Edx, leaf0.Ecx) : CpuVendor.Unknown;
}
