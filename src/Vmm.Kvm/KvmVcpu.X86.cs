using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Arch.X86;
using Vmm.Kvm.Cpu;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm;

/// <summary>The x86 side of a vCPU: general, segment and event registers, CPUID, MSRs, FPU, the LAPIC page, and the
/// boot state a kernel loader asks for.</summary>
public sealed unsafe partial class KvmVcpu
{
    private const int LapicLvtLint0 = 0x350, LapicLvtLint1 = 0x360;
    private const uint ApicDeliveryExtInt = 7, ApicDeliveryNmi = 4;

    private bool _commonConfigured;

    public KvmRegs GetRegs()
    {
        KvmRegs regs;
        _fd.Ioctl(KvmIoctls.GetRegs, &regs, "KVM_GET_REGS");
        return regs;
    }

    public void SetRegs(in KvmRegs regs)
    {
        KvmRegs copy = regs;
        _fd.Ioctl(KvmIoctls.SetRegs, &copy, "KVM_SET_REGS");
    }

    public KvmSregs GetSregs()
    {
        KvmSregs sregs;
        _fd.Ioctl(KvmIoctls.GetSregs, &sregs, "KVM_GET_SREGS");
        return sregs;
    }

    public void SetSregs(in KvmSregs sregs)
    {
        KvmSregs copy = sregs;
        _fd.Ioctl(KvmIoctls.SetSregs, &copy, "KVM_SET_SREGS");
    }

    public KvmVcpuEvents GetEvents()
    {
        KvmVcpuEvents events;
        _fd.Ioctl(KvmIoctls.GetVcpuEvents, &events, "KVM_GET_VCPU_EVENTS");
        return events;
    }

    public void SetEvents(in KvmVcpuEvents events)
    {
        KvmVcpuEvents copy = events;
        _fd.Ioctl(KvmIoctls.SetVcpuEvents, &copy, "KVM_SET_VCPU_EVENTS");
    }

    /// <summary>KVM_TRANSLATE: guest-physical address of <paramref name="linearAddress"/> under the vCPU's current
    /// paging mode, or null when unmapped.</summary>
    public ulong? Translate(ulong linearAddress)
    {
        var t = new KvmTranslation { LinearAddress = linearAddress };
        if (_fd.TryIoctl(KvmIoctls.Translate, &t, out _) < 0 || t.Valid == 0)
        {
            return null;
        }
        return t.PhysicalAddress;
    }

    public void SetCpuid(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        int bytes = sizeof(KvmCpuid2) + entries.Length * sizeof(KvmCpuidEntry2);
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            // Safe: the buffer was allocated for the header plus entries.Length entries.
            ((KvmCpuid2*)buffer)->Nent = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry2>(buffer + sizeof(KvmCpuid2), entries.Length));
            _fd.Ioctl(KvmIoctls.SetCpuid2, buffer, "KVM_SET_CPUID2");
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    /// <summary>KVM_SET_MSRS; throws naming the first MSR KVM refused.</summary>
    public void SetMsrs(ReadOnlySpan<(uint Index, ulong Value)> msrs)
    {
        int bytes = sizeof(KvmMsrs) + msrs.Length * sizeof(KvmMsrEntry);
        byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            // Safe: the buffer was allocated for the header plus msrs.Length entries.
            ((KvmMsrs*)buffer)->Nmsrs = (uint)msrs.Length;
            var entries = new Span<KvmMsrEntry>(buffer + sizeof(KvmMsrs), msrs.Length);
            for (int i = 0; i < msrs.Length; i++)
            {
                entries[i] = new KvmMsrEntry { Index = msrs[i].Index, Data = msrs[i].Value };
            }
            int written = _fd.Ioctl(KvmIoctls.SetMsrs, buffer, "KVM_SET_MSRS");
            if (written != msrs.Length)
            {
                throw new KvmException($"KVM_SET_MSRS stopped at MSR 0x{msrs[written].Index:x} ({written} of {msrs.Length} written)");
            }
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    public ulong GetMsr(uint index)
    {
        int bytes = sizeof(KvmMsrs) + sizeof(KvmMsrEntry);
        byte* buffer = stackalloc byte[bytes];
        // Safe: a stack buffer sized for the header and exactly one entry, which is all the kernel touches.
        new Span<byte>(buffer, bytes).Clear();
        ((KvmMsrs*)buffer)->Nmsrs = 1;
        var entry = (KvmMsrEntry*)(buffer + sizeof(KvmMsrs));
        entry->Index = index;
        if (_fd.Ioctl(KvmIoctls.GetMsrs, buffer, $"KVM_GET_MSRS(0x{index:x})") != 1)
        {
            throw new KvmException($"KVM_GET_MSRS: MSR 0x{index:x} not readable");
        }
        return entry->Data;
    }

    /// <summary>KVM_GET_LAPIC: the 1 KiB local APIC register page.</summary>
    public byte[] GetLapicRegisters()
    {
        KvmLapicState lapic;
        _fd.Ioctl(KvmIoctls.GetLapic, &lapic, "KVM_GET_LAPIC");
        // Safe: Regs is a 1024-byte fixed buffer in a local.
        return new ReadOnlySpan<byte>(lapic.Regs, 1024).ToArray();
    }

    /// <summary>KVM_GET_FPU: (x87 control word, MXCSR). The kernel never fills in MXCSR here (x86.c copies no mxcsr
    /// in either direction), so it reads 0; the guest's real MXCSR is KVM's reset value 0x1F80.</summary>
    public (ushort Fcw, uint Mxcsr) GetFpuControl()
    {
        KvmFpu fpu;
        _fd.Ioctl(KvmIoctls.GetFpu, &fpu, "KVM_GET_FPU");
        return (fpu.Fcw, fpu.Mxcsr);
    }

    /// <summary>Everything every vCPU needs: CPUID for its APIC id, boot MSRs, FPU defaults, LAPIC LINT0/LINT1.</summary>
    internal void ConfigureCommon(int cpuCount)
    {
        KvmSystem system = _vm.System;
        SetCpuid(CpuidRules.Apply(system.GetSupportedCpuid(), Index, cpuCount, system.Profile, system.CpuidHostFacts));
        _commonConfigured = true;
        SetMsrs(BootMsrs.Select(system.MsrIndexList));

        KvmFpu fpu = default;
        fpu.Fcw = 0x37F; // x87 default control word (all exceptions masked, 64-bit precision)
        fpu.Mxcsr = 0x1F80; // SSE default, as Firecracker sets it; current kernels ignore it and reset MXCSR to this anyway
        _fd.Ioctl(KvmIoctls.SetFpu, &fpu, "KVM_SET_FPU");

        // LINT0 delivers the PIC's ExtINT, LINT1 NMI, as a BIOS would leave them (Firecracker's set_lint).
        KvmLapicState lapic;
        _fd.Ioctl(KvmIoctls.GetLapic, &lapic, "KVM_GET_LAPIC");
        SetDeliveryMode(ref lapic, LapicLvtLint0, ApicDeliveryExtInt);
        SetDeliveryMode(ref lapic, LapicLvtLint1, ApicDeliveryNmi);
        _fd.Ioctl(KvmIoctls.SetLapic, &lapic, "KVM_SET_LAPIC");
    }

    private static void SetDeliveryMode(ref KvmLapicState lapic, int register, uint mode)
    {
        // Safe: register + 4 <= 1024, the fixed buffer's size.
        uint* reg = (uint*)((byte*)Unsafe.AsPointer(ref lapic) + register);
        *reg = (*reg & ~0x700u) | (mode << 8);
    }

    /// <summary>
    /// Loads the boot vCPU's registers from the kernel loader's <paramref name="boot"/> state. Needs
    /// <see cref="ConfigureCommon"/> first: VMX/SVM KVM checks EFER and CR4 against the vCPU's CPUID (no long mode
    /// in an empty CPUID, so KVM_SET_SREGS fails with EINVAL). The PVM host does not check, which hid the order.
    /// </summary>
    internal void ConfigureBoot(X86BootCpuState boot)
    {
        if (!_commonConfigured)
        {
            throw new InvalidOperationException("ConfigureCommon (CPUID, MSRs) must run before ConfigureBoot");
        }
        KvmSregs sregs = GetSregs();
        sregs.Cs = ToKvm(boot.Code);
        KvmSegment data = ToKvm(boot.Data);
        sregs.Ds = data;
        sregs.Es = data;
        sregs.Fs = data;
        sregs.Gs = data;
        sregs.Ss = data;
        sregs.Tr = ToKvm(boot.Task);
        sregs.Ldt = new KvmSegment { Unusable = 1, Type = 2 };
        sregs.Gdt = new KvmDtable { Base = boot.GdtBase, Limit = boot.GdtLimit };
        sregs.Idt = new KvmDtable { Base = boot.IdtBase, Limit = boot.IdtLimit };
        sregs.Cr0 = boot.Cr0;
        sregs.Cr3 = boot.Cr3;
        sregs.Cr4 = boot.Cr4;
        sregs.Efer = boot.Efer;
        SetSregs(sregs);

        var regs = new KvmRegs
        {
            Rip = boot.Rip,
            Rsp = boot.Rsp,
            Rbp = boot.Rbp,
            Rsi = boot.Rsi,
            Rbx = boot.Rbx,
            Rflags = boot.Rflags | 0x2, // bit 1 is reserved-as-one
        };
        SetRegs(regs);
    }

    internal static KvmSegment ToKvm(X86Segment s) => new()
    {
        Base = s.Base,
        Limit = s.Limit,
        Selector = s.Selector,
        Type = s.Type,
        Present = KvmStructs.Bool(s.Present),
        Dpl = s.Dpl,
        Db = KvmStructs.Bool(s.DefaultBig),
        S = KvmStructs.Bool(s.CodeOrData),
        L = KvmStructs.Bool(s.Long),
        G = KvmStructs.Bool(s.Granularity),
        Unusable = KvmStructs.Bool(!s.Present),
    };
}
