using Vmm.Kvm.Cpu;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Tests;

public class CpuidRulesTests
{
    private static KvmCpuidEntry2 E(uint function, uint index, uint eax, uint ebx, uint ecx, uint edx, uint flags = 0) =>
        new() { Function = function, Index = index, Flags = flags, Eax = eax, Ebx = ebx, Ecx = ecx, Edx = edx };

    private static readonly KvmCpuidEntry2[] Host =
    [
        E(0x0, 0, 0x1F, 0x68747541, 0x444D4163, 0x69746E65),
        E(0x1, 0, 0x00A00F11, 0x07020800, 0xFEDA3203 | (1u << 13), 0x178BFBFF),
        E(0x4, 0, 0x00000121, 0x01C0003F, 0x3F, 0, KvmConstants.CpuidFlagSignificantIndex), // L1 data
        E(0x4, 3, 0x00000163, 0x03C0003F, 0x3FFF, 0, KvmConstants.CpuidFlagSignificantIndex), // L3
        E(0xB, 0, 1, 2, 0x100, 0x77, KvmConstants.CpuidFlagSignificantIndex),
        E(0x1F, 0, 1, 2, 0x100, 0x77, KvmConstants.CpuidFlagSignificantIndex),
        E(0x40000000, 0, 0x40000001, 0, 0, 0),
        E(0x80000008, 0, 0x3030, 0x4 | 0x1, 0, 0),
    ];

    [Fact]
    public void Leaf1CarriesApicIdCountAndHypervisorBit()
    {
        KvmCpuidEntry2[] table = CpuidRules.Apply(Host, vcpuIndex: 2, cpuCount: 4, HostProfile.Standard);
        KvmCpuidEntry2 leaf1 = CpuidRules.Find(table, 1)!.Value;
        Assert.Equal(2u, leaf1.Ebx >> 24);
        Assert.Equal(4u, (leaf1.Ebx >> 16) & 0xFF);
        Assert.Equal(0x0800u, leaf1.Ebx & 0xFFFF); // CLFLUSH size and brand index kept
        Assert.NotEqual(0u, leaf1.Ecx & (1u << 31));
        Assert.NotEqual(0u, leaf1.Edx & (1u << 28));
        Assert.NotEqual(0u, leaf1.Ecx & (1u << 13)); // CX16 kept on an ordinary host
    }

    [Fact]
    public void PvmProfileClearsCx16AndKeepsXsaveErptr()
    {
        KvmCpuidEntry2[] table = CpuidRules.Apply(Host, 0, 1, HostProfile.Pvm);
        Assert.Equal(0u, CpuidRules.Find(table, 1)!.Value.Ecx & (1u << 13));
        Assert.NotEqual(0u, CpuidRules.Find(table, 0x80000008)!.Value.Ebx & 0x4);
        Assert.Equal(0u, CpuidRules.Find(table, 1)!.Value.Edx & (1u << 28)); // single vCPU: no HTT
    }

    [Fact]
    public void TopologyLeavesDescribeOneCorePerVcpu()
    {
        KvmCpuidEntry2[] table = CpuidRules.Apply(Host, vcpuIndex: 3, cpuCount: 5, HostProfile.Standard);
        foreach (uint leaf in new uint[] { 0xB, 0x1F })
        {
            KvmCpuidEntry2 smt = CpuidRules.Find(table, leaf, 0)!.Value;
            KvmCpuidEntry2 core = CpuidRules.Find(table, leaf, 1)!.Value;
            KvmCpuidEntry2 end = CpuidRules.Find(table, leaf, 2)!.Value;
            Assert.Equal((0u, 1u, 0x100u, 3u), (smt.Eax, smt.Ebx, smt.Ecx, smt.Edx));
            Assert.Equal((3u, 5u, 0x201u, 3u), (core.Eax, core.Ebx, core.Ecx, core.Edx)); // 5 ids need 3 bits
            Assert.Equal(0u, (end.Ecx >> 8) & 0xFF);
        }
        KvmCpuidEntry2 l1 = CpuidRules.Find(table, 4, 0)!.Value;
        KvmCpuidEntry2 l3 = CpuidRules.Find(table, 4, 3)!.Value;
        Assert.Equal(4u, l1.Eax >> 26);
        Assert.Equal(0u, (l1.Eax >> 14) & 0xFFF);
        Assert.Equal(4u, (l3.Eax >> 14) & 0xFFF);
        Assert.Equal(0x163u & 0x3FFF, l3.Eax & 0x3FFF);
    }

    [Fact]
    public void KvmSignatureLeafIsPresent()
    {
        KvmCpuidEntry2 leaf = CpuidRules.Find(CpuidRules.Apply(Host, 0, 1, HostProfile.Standard), 0x40000000)!.Value;
        Span<byte> signature = stackalloc byte[12];
        BitConverter.TryWriteBytes(signature, leaf.Ebx);
        BitConverter.TryWriteBytes(signature[4..], leaf.Ecx);
        BitConverter.TryWriteBytes(signature[8..], leaf.Edx);
        Assert.Equal("KVMKVMKVM\0\0\0", System.Text.Encoding.ASCII.GetString(signature));
    }

    [Fact]
    public void TscDeadlineTimerIsOfferedOnlyWhenKvmEmulatesIt()
    {
        Assert.Equal(0u, CpuidRules.Find(CpuidRules.Apply(Host, 0, 1, HostProfile.Standard), 1)!.Value.Ecx & CpuidRules.TscDeadlineTimerBit);
        var facts = new CpuidHostFacts(TscDeadlineTimer: true, BrandString: null);
        Assert.NotEqual(0u, CpuidRules.Find(CpuidRules.Apply(Host, 0, 1, HostProfile.Standard, facts), 1)!.Value.Ecx & CpuidRules.TscDeadlineTimerBit);
    }

    [Fact]
    public void EmptyBrandLeavesGetTheHostsBrandAndFilledOnesAreKept()
    {
        KvmCpuidEntry2[] host = [.. Host, E(0x80000002, 0, 0, 0, 0, 0), E(0x80000003, 0, 0, 0, 0, 0), E(0x80000004, 0, 0x41, 0, 0, 0)];
        var facts = new CpuidHostFacts(false, CpuidRules.BrandStringWords("AMD EPYC Processor"));

        KvmCpuidEntry2[] table = CpuidRules.Apply(host, 0, 1, HostProfile.Standard, facts);

        byte[] brand = new byte[32];
        for (uint leaf = 0; leaf < 2; leaf++)
        {
            KvmCpuidEntry2 e = CpuidRules.Find(table, 0x80000002 + leaf)!.Value;
            foreach ((uint value, int i) in new[] { (e.Eax, 0), (e.Ebx, 1), (e.Ecx, 2), (e.Edx, 3) })
            {
                BitConverter.TryWriteBytes(brand.AsSpan((int)leaf * 16 + i * 4), value);
            }
        }
        Assert.Equal("AMD EPYC Processor", System.Text.Encoding.ASCII.GetString(brand).TrimEnd('\0'));
        Assert.Equal(0x41u, CpuidRules.Find(table, 0x80000004)!.Value.Eax); // KVM gave one: it stays
    }

    [Fact]
    public void RejectsBadIndices()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidRules.Apply(Host, 1, 1, HostProfile.Standard));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuidRules.Apply(Host, 0, 0, HostProfile.Standard));
    }
}

public class HostProfileTests
{
    [Fact]
    public void StandardHostNeedsNothing()
    {
        Assert.Equal("", HostProfile.Standard.GuestCommandLineAdditions);
        Assert.Equal(EmulationRepair.None, HostProfile.Standard.ChooseRepair([0xCC]));
        Assert.Equal(EmulationRepair.None, HostProfile.Standard.ChooseRepair([0x9B]));
    }

    [Fact]
    public void PvmHostRepairsOnlyInt3AndFwait()
    {
        Assert.Equal(EmulationRepair.SkipAndInjectBreakpoint, HostProfile.Pvm.ChooseRepair([0xCC]));
        Assert.Equal(EmulationRepair.SkipInstruction, HostProfile.Pvm.ChooseRepair([0x9B, 0x90]));
        Assert.Equal(EmulationRepair.None, HostProfile.Pvm.ChooseRepair([0xCD, 0x03])); // int n
        Assert.Equal(EmulationRepair.None, HostProfile.Pvm.ChooseRepair([0xF3, 0x0F, 0xB8, 0xC0])); // popcnt
        Assert.Equal(EmulationRepair.None, HostProfile.Pvm.ChooseRepair([]));
        Assert.Contains("clearcpuid=popcnt,smap,erms,fsrm,fsgsbase,clwb", HostProfile.Pvm.GuestCommandLineAdditions);
        Assert.Contains("noxsave", HostProfile.Pvm.GuestCommandLineAdditions);
    }

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)] // kvm_pvm loaded but no KVM device registered: seen on machines without /dev/kvm
    [InlineData(false, true, false)] // an ordinary kvm_amd/kvm_intel host
    [InlineData(true, true, true)]
    public void PvmNeedsTheModuleAndARegisteredKvmDevice(bool pvmModule, bool kvmDevice, bool expected)
    {
        string root = Directory.CreateTempSubdirectory("sysfs").FullName;
        try
        {
            if (pvmModule)
            {
                Directory.CreateDirectory(Path.Combine(root, "module/kvm_pvm"));
            }
            if (kvmDevice)
            {
                Directory.CreateDirectory(Path.Combine(root, "class/misc/kvm"));
            }
            Assert.Equal(expected, HostProfile.Detect(root).IsPvm);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData("GenuineIntel", CpuVendor.Intel)]
    [InlineData("AuthenticAMD", CpuVendor.Amd)]
    [InlineData("HygonGenuine", CpuVendor.Hygon)]
    [InlineData("KVMKVMKVM\0\0\0", CpuVendor.Unknown)]
    public void VendorIsReadFromLeaf0InEbxEdxEcxOrder(string name, CpuVendor expected)
    {
        byte[] b = System.Text.Encoding.ASCII.GetBytes(name);
        uint ebx = BitConverter.ToUInt32(b, 0), edx = BitConverter.ToUInt32(b, 4), ecx = BitConverter.ToUInt32(b, 8);

        Assert.Equal(expected, CpuVendorId.FromLeaf0(ebx, edx, ecx));
    }

    [Theory]
    [InlineData(CpuVendor.Intel, false, true)]   // VMX: the VMCS keeps the state at the fault
    [InlineData(CpuVendor.Amd, false, false)]    // SVM: KVM INITs the vCPU after the SHUTDOWN intercept
    [InlineData(CpuVendor.Hygon, false, false)]  // the same SVM code
    [InlineData(CpuVendor.Amd, true, true)]      // PVM on an AMD host: no VMCB involved
    public void RegistersAfterATripleFaultAreTrustedPerVendor(CpuVendor vendor, bool pvm, bool expected)
    {
        HostProfile profile = pvm ? HostProfile.Pvm : HostProfile.Standard;

        Assert.Equal(expected, profile.KeepsRegistersAfterShutdown(vendor));
    }

    [Fact]
    public void BootMsrsNeverIncludeArchCapabilitiesAndOnlySupportedOnes()
    {
        uint[] supported = [0x10A, BootMsrs.Ia32Tsc, BootMsrs.Lstar, BootMsrs.Ia32MiscEnable];
        var selected = BootMsrs.Select(supported);
        Assert.Equal([(BootMsrs.Lstar, 0UL), (BootMsrs.Ia32Tsc, 0UL), (BootMsrs.Ia32MiscEnable, 1UL)], selected);
    }

    [Fact]
    public void MissingDeviceGivesOneLineMessage()
    {
        var e = Assert.Throws<KvmUnavailableException>(() => KvmSystem.Open(path: "/nonexistent/kvm"));
        Assert.Equal("cannot open /nonexistent/kvm: No such file or directory", e.Message);
    }
}
