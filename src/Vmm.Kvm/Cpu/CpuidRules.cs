using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Cpu;

/// <summary>
/// Turns KVM_GET_SUPPORTED_CPUID into one vCPU's CPUID table: hypervisor bit, KVM paravirt signature, per-vCPU APIC
/// ids (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX, 0x8000001E EAX) and a topology of <c>cpuCount</c> single-thread
/// cores in one package (leaves 1, 4, 0xB, 0x1F), the bits KVM reports only as capabilities (TSC deadline timer),
/// the brand string KVM leaves empty, then the host profile's edits. Runs once per vCPU at setup.
/// </summary>
public static class CpuidRules
{
    /// <summary>"KVMKVMKVM\0\0\0" as the EBX, ECX, EDX of leaf 0x40000000.</summary>
    public const uint KvmSignatureEbx = 0x4B4D564B, KvmSignatureEcx = 0x564B4D56, KvmSignatureEdx = 0x0000004D;

    /// <summary>CPUID leaf 1 ECX bit 24. KVM_GET_SUPPORTED_CPUID never sets it: KVM_CAP_TSC_DEADLINE_TIMER says the
    /// in-kernel LAPIC emulates it, and QEMU and Firecracker set it from that. Without it Linux calibrates the
    /// LAPIC timer against the PIT, which fails on a loaded or nested host ("APIC timer disabled due to
    /// verification failure") and leaves the guest on the PIT alone.</summary>
    public const uint TscDeadlineTimerBit = 1u << 24;

    public static KvmCpuidEntry2[] Apply(
        ReadOnlySpan<KvmCpuidEntry2> supported, int vcpuIndex, int cpuCount, HostProfile profile, CpuidHostFacts host = default)
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
                    if (host.TscDeadlineTimer)
                    {
                        e.Ecx |= TscDeadlineTimerBit;
                    }
                    break;
                case >= 0x80000002 and <= 0x80000004 when host.BrandString is { } brand && (e.Eax | e.Ebx | e.Ecx | e.Edx) == 0:
                    // KVM zeroes the brand leaves; Linux then prints "AMD 17/01" instead of the model's name.
                    int word = (int)(e.Function - 0x80000002) * 4;
                    (e.Eax, e.Ebx, e.Ecx, e.Edx) = (brand[word], brand[word + 1], brand[word + 2], brand[word + 3]);
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

    /// <summary>The 48-byte brand string as the twelve little-endian words of leaves 0x80000002–4, NUL padded.</summary>
    public static uint[] BrandStringWords(string brand)
    {
        byte[] bytes = new byte[48];
        System.Text.Encoding.ASCII.GetBytes(brand.AsSpan(0, Math.Min(brand.Length, 47)), bytes);
        var words = new uint[12];
        for (int i = 0; i < 12; i++)
        {
            words[i] = BitConverter.ToUInt32(bytes, i * 4);
        }
        return words;
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

/// <summary>Facts about the host that KVM_GET_SUPPORTED_CPUID does not carry.</summary>
/// <param name="TscDeadlineTimer">KVM_CAP_TSC_DEADLINE_TIMER: the in-kernel LAPIC emulates TSC-deadline mode.</param>
/// <param name="BrandString">The host CPU's brand string as leaves 0x80000002–4 (12 words), or null.</param>
public readonly record struct CpuidHostFacts(bool TscDeadlineTimer, uint[]? BrandString)
{
    /// <summary>The brand string of the CPU this process runs on, or null where CPUID cannot be executed.</summary>
    public static uint[]? HostBrandString()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            return null;
        }
        (int maxExtended, _, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(unchecked((int)0x80000000), 0);
        if ((uint)maxExtended < 0x80000004)
        {
            return null;
        }
        var words = new uint[12];
        for (int leaf = 0; leaf < 3; leaf++)
        {
            (int a, int b, int c, int d) = System.Runtime.Intrinsics.X86.X86Base.CpuId(unchecked((int)(0x80000002 + leaf)), 0);
            (words[leaf * 4], words[leaf * 4 + 1], words[leaf * 4 + 2], words[leaf * 4 + 3]) = ((uint)a, (uint)b, (uint)c, (uint)d);
        }
        return Array.TrueForAll(words, w => w == 0) ? null : words;
    }
}
