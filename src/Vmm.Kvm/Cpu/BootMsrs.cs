namespace Vmm.Kvm.Cpu;

/// <summary>
/// The MSR values every vCPU starts with (Firecracker's minimal set): SYSENTER/SYSCALL targets zeroed, TSC zeroed,
/// IA32_MISC_ENABLE with fast strings. Only MSRs in KVM_GET_MSR_INDEX_LIST are written, and never
/// IA32_ARCH_CAPABILITIES (0x10A), which the PVM host refuses.
/// </summary>
public static class BootMsrs
{
    public const uint Ia32Tsc = 0x10;
    public const uint Ia32SysenterCs = 0x174, Ia32SysenterEsp = 0x175, Ia32SysenterEip = 0x176;
    public const uint Ia32MiscEnable = 0x1A0;
    public const ulong MiscEnableFastStrings = 1;
    public const uint Star = 0xC0000081, Lstar = 0xC0000082, Cstar = 0xC0000083, SyscallMask = 0xC0000084;
    public const uint KernelGsBase = 0xC0000102;

    private static readonly (uint Index, ulong Value)[] Defaults =
    [
        (Ia32SysenterCs, 0), (Ia32SysenterEsp, 0), (Ia32SysenterEip, 0),
        (Star, 0), (Cstar, 0), (KernelGsBase, 0), (SyscallMask, 0), (Lstar, 0),
        (Ia32Tsc, 0),
        (Ia32MiscEnable, MiscEnableFastStrings),
    ];

    /// <summary>The boot MSRs this host supports, in a fixed order.</summary>
    public static (uint Index, ulong Value)[] Select(ReadOnlySpan<uint> supportedIndices)
    {
        var selected = new List<(uint, ulong)>(Defaults.Length);
        foreach ((uint index, ulong value) in Defaults)
        {
            if (HostProfile.IsMsrWritable(index) && supportedIndices.Contains(index))
            {
                selected.Add((index, value));
            }
        }
        return selected.ToArray();
    }
}
