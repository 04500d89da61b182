using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Cpu;

/// <summary>
/// Turns KVM_GET_SUPPORTED_CPUID into one vCPU's CPUID table: hypervisor bit, KVM paravirt signature, per-vCPU APIC
/// ids (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX, 0x8000001E EAX) and a topology of <c>cpuCount</c> single-thread
/// cores in one package (leaves 1, 4, 0xB, 0x1F), then the host profile's edits. Runs once per vCPU at setup.
/// </summary>
public static class CpuidRules
{
    /// <summary>"KVMKVMKVM\0\0\0" as the EBX, ECX, EDX of leaf 0x40000000.</summary>
    public const uint KvmSignatureEbx = 0x4B4D564B, KvmSignatureEcx = 0x564B4D56, KvmSignatureEdx = 0x0000004D;

    public static KvmCpuidEntry2[] Apply(ReadOnlySpan<KvmCpuidEntry2> supported, int vcpuIndex, int cpuCount, HostProfile profile)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpuCount, 255);
        ArgumentOutOfRangeException.ThrowIfNegative(vcpuIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(vcpuIndex, cpuCount);
        uint apicId = (uint)vcpuIndex;
        uint count = (uint)cpuCount;
        uint coreShift = (uint)(cpuCount <= 1 ? 0 : 32 - int.LeadingZeroCount(cpuCount - 1));

        var result = new List<KvmCpuidEntry2>(supported.Length + 4);
        bool hasLeafB = false, hasLeaf1F = false;
        foreach (KvmCpuidEntry2 original in supported)
        {
            KvmCpuidEntry2 e = original;
            switch (e.Function)
            {
                case 0x1:
                    e.Ebx = (e.Ebx & 0x0000FFFF) | (count << 16) | (apicId << 24);
                    e.Ecx |= 1u << 31; // hypervisor present
                    // HTT says EBX[23:16] (logical processors per package) is meaningful; only with several vCPUs.
                    e.Edx = cpuCount > 1 ? e.Edx | (1u << 28) : e.Edx & ~(1u << 28);
                    break;
                case 0x4:
                    if ((e.Eax & 0x1F) != 0)
                    {
                        uint level = (e.Eax >> 5) & 0x7;
                        uint sharing = level >= 3 ? count - 1 : 0;
                        e.Eax = (e.Eax & 0x3FFF) | ((sharing & 0xFFF) << 14) | (((count - 1) & 0x3F) << 26);
                    }
                    break;
                case 0xB:
                    hasLeafB = true;
                    continue; // rebuilt below
                case 0x1F:
                    hasLeaf1F = true;
                    continue; // rebuilt below
                case 0x40000000:
                    e.Eax = Math.Max(e.Eax, 0x40000001);
                    e.Ebx = KvmSignatureEbx;
                    e.Ecx = KvmSignatureEcx;
                    e.Edx = KvmSignatureEdx;
                    break;
                case 0x8000001E:
                    e.Eax = apicId;
                    e.Ebx = apicId & 0xFF; // core id, one thread per core
                    e.Ecx = 0; // node 0
                    break;
            }
            result.Add(e);
        }
        if (hasLeafB)
        {
            AddTopologyLeaf(result, 0xB, apicId, count, coreShift);
        }
        if (hasLeaf1F)
        {
            AddTopologyLeaf(result, 0x1F, apicId, count, coreShift);
        }
        KvmCpuidEntry2[] entries = result.ToArray();
        profile.ApplyCpuidRules(entries);
        return entries;
    }

    private static void AddTopologyLeaf(List<KvmCpuidEntry2> result, uint function, uint apicId, uint count, uint coreShift)
    {
        // Subleaf 0: SMT level (1 thread per core); subleaf 1: core level (all vCPUs); subleaf 2: end marker.
        result.Add(Leaf(function, 0, eax: 0, ebx: 1, ecx: (1u << 8) | 0, apicId));
        result.Add(Leaf(function, 1, eax: coreShift, ebx: count, ecx: (2u << 8) | 1, apicId));
        result.Add(Leaf(function, 2, eax: 0, ebx: 0, ecx: 2, apicId));
    }

    private static KvmCpuidEntry2 Leaf(uint function, uint index, uint eax, uint ebx, uint ecx, uint edx) => new()
    {
        Function = function,
        Index = index,
        Flags = KvmConstants.CpuidFlagSignificantIndex,
        Eax = eax,
        Ebx = ebx,
        Ecx = ecx,
        Edx = edx,
    };

    /// <summary>The entry for (<paramref name="function"/>, <paramref name="index"/>), or null.</summary>
    public static KvmCpuidEntry2? Find(ReadOnlySpan<KvmCpuidEntry2> entries, uint function, uint index = 0)
    {
        foreach (KvmCpuidEntry2 e in entries)
        {
            if (e.Function == function && ((e.Flags & KvmConstants.CpuidFlagSignificantIndex) == 0 || e.Index == index))
            {
                return e;
            }
        }
        return null;
    }
}
