namespace Vmm.Core.Arch.X86;

/// <summary>A segment register as KVM's kvm_segment describes it (hidden part included).</summary>
public readonly record struct X86Segment(
    ushort Selector, ulong Base, uint Limit, byte Type, bool Present, byte Dpl, bool DefaultBig, bool Long,
    bool Granularity, bool CodeOrData)
{
    /// <summary>A null/unusable segment.</summary>
    public static X86Segment Unusable => default;
}

/// <summary>
/// The register state the boot vCPU starts in, produced by a kernel loader (which has also written the GDT, page
/// tables and boot structures into guest memory) and applied by the hypervisor layer. Application processors
/// start in the reset state and are woken by the guest with INIT/SIPI.
/// </summary>
public sealed record X86BootCpuState : BootCpuState
{
    public required ulong Rip { get; init; }
    public ulong Rsp { get; init; }
    public ulong Rbp { get; init; }
    public ulong Rsi { get; init; }
    public ulong Rbx { get; init; }
    public ulong Rflags { get; init; } = 0x2;

    public required ulong Cr0 { get; init; }
    public ulong Cr3 { get; init; }
    public ulong Cr4 { get; init; }
    public ulong Efer { get; init; }

    public required X86Segment Code { get; init; }
    /// <summary>Loaded into DS, ES, FS, GS and SS.</summary>
    public required X86Segment Data { get; init; }
    /// <summary>Task register; must be a present 32/64-bit busy TSS for VM entry to succeed.</summary>
    public required X86Segment Task { get; init; }

    public ulong GdtBase { get; init; }
    public ushort GdtLimit { get; init; }
    public ulong IdtBase { get; init; }
    public ushort IdtLimit { get; init; }

}
