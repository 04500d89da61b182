using System.Runtime.InteropServices;

namespace Vmm.Kvm.Interop;

// Blittable mirrors of linux/kvm.h (x86_64). Sizes and key offsets are pinned by StructLayoutTests.

[StructLayout(LayoutKind.Sequential)]
internal struct KvmUserspaceMemoryRegion
{
    public uint Slot;
    public uint Flags;
    public ulong GuestPhysAddr;
    public ulong MemorySize;
    public ulong UserspaceAddr;
}

/// <summary>kvm_regs: the general registers of a vCPU.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

/// <summary>kvm_segment: a segment register with its hidden part.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmSegment
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type, Present, Dpl, Db, S, L, G, Avl, Unusable, Padding;
}

/// <summary>kvm_dtable: GDTR/IDTR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmDtable
{
    public ulong Base;
    public ushort Limit;
    public ushort Padding0, Padding1, Padding2;
}

/// <summary>kvm_sregs: segment, descriptor-table and control registers.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmSregs
{
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDtable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
    public fixed ulong InterruptBitmap[4];
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmCpuid2
{
    public uint Nent;
    public uint Padding;
    // followed by KvmCpuidEntry2[Nent]
}

/// <summary>kvm_cpuid_entry2: one CPUID leaf/subleaf.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct KvmCpuidEntry2
{
    public uint Function, Index, Flags, Eax, Ebx, Ecx, Edx;
    public fixed uint Padding[3];
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrList
{
    public uint Nmsrs;
    // followed by uint indices[Nmsrs]
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrs
{
    public uint Nmsrs;
    public uint Pad;
    // followed by KvmMsrEntry[Nmsrs]
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrEntry
{
    public uint Index;
    public uint Reserved;
    public ulong Data;
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmIrqRouting
{
    public uint Nr;
    public uint Flags;
    // followed by KvmIrqRoutingEntry[Nr]
}

[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct KvmIrqRoutingEntry
{
    [FieldOffset(0)] public uint Gsi;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint Flags;
    // union u at 16: irqchip { irqchip, pin } or msi { address_lo, address_hi, data, devid }
    [FieldOffset(16)] public uint IrqchipId;
    [FieldOffset(20)] public uint IrqchipPin;
    [FieldOffset(16)] public uint MsiAddressLo;
    [FieldOffset(20)] public uint MsiAddressHi;
    [FieldOffset(24)] public uint MsiData;
    [FieldOffset(28)] public uint MsiDevId;
}

/// <summary>struct kvm_enable_cap (KVM_ENABLE_CAP on a VM or vCPU).</summary>
[StructLayout(LayoutKind.Explicit, Size = 104)]
internal struct KvmEnableCap
{
    [FieldOffset(0)] public uint Cap;
    [FieldOffset(4)] public uint Flags;
    [FieldOffset(8)] public ulong Arg0;
    // args[1..3] and 64 bytes of padding follow, all zero
}

[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct KvmIrqfd
{
    [FieldOffset(0)] public uint Fd;
    [FieldOffset(4)] public uint Gsi;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public uint ResampleFd;
}

[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct KvmIoeventfd
{
    [FieldOffset(0)] public ulong Datamatch;
    [FieldOffset(8)] public ulong Addr;
    [FieldOffset(16)] public uint Len;
    [FieldOffset(20)] public int Fd;
    [FieldOffset(24)] public uint Flags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmIrqLevel
{
    public uint Irq;
    public int Level;
}

[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct KvmPitConfig
{
    [FieldOffset(0)] public uint Flags;
}

/// <summary>kvm_vcpu_events: pending/injected exception, interrupt, NMI, SIPI and SMI state.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct KvmVcpuEvents
{
    [FieldOffset(0)] public byte ExceptionInjected;
    [FieldOffset(1)] public byte ExceptionNr;
    [FieldOffset(2)] public byte ExceptionHasErrorCode;
    [FieldOffset(3)] public byte ExceptionPending;
    [FieldOffset(4)] public uint ExceptionErrorCode;
    [FieldOffset(8)] public byte InterruptInjected;
    [FieldOffset(9)] public byte InterruptNr;
    [FieldOffset(10)] public byte InterruptSoft;
    [FieldOffset(11)] public byte InterruptShadow;
    [FieldOffset(12)] public byte NmiInjected;
    [FieldOffset(13)] public byte NmiPending;
    [FieldOffset(14)] public byte NmiMasked;
    [FieldOffset(16)] public uint SipiVector;
    [FieldOffset(20)] public uint Flags;
    [FieldOffset(24)] public byte SmiSmm;
    [FieldOffset(25)] public byte SmiPending;
    [FieldOffset(55)] public byte ExceptionHasPayload;
    [FieldOffset(56)] public ulong ExceptionPayload;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct KvmTranslation
{
    [FieldOffset(0)] public ulong LinearAddress;
    [FieldOffset(8)] public ulong PhysicalAddress;
    [FieldOffset(16)] public byte Valid;
    [FieldOffset(17)] public byte Writeable;
    [FieldOffset(18)] public byte Usermode;
}

[StructLayout(LayoutKind.Explicit, Size = 416)]
internal struct KvmFpu
{
    [FieldOffset(128)] public ushort Fcw;
    [FieldOffset(130)] public ushort Fsw;
    [FieldOffset(132)] public byte Ftwx;
    [FieldOffset(134)] public ushort LastOpcode;
    [FieldOffset(136)] public ulong LastIp;
    [FieldOffset(144)] public ulong LastDp;
    [FieldOffset(408)] public uint Mxcsr;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmLapicState
{
    public fixed byte Regs[1024];
}

[StructLayout(LayoutKind.Sequential)]
internal struct KvmMpState
{
    public uint MpState;
}

/// <summary>
/// The fixed head of the mmapped <c>struct kvm_run</c> and the exit-union members the VMM reads. Accessed in place
/// through a pointer into the vCPU's shared page, never copied.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 304)]
internal unsafe struct KvmRun
{
    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public uint ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;

    // KVM_EXIT_IO
    [FieldOffset(32)] public byte IoDirection;
    [FieldOffset(33)] public byte IoSize;
    [FieldOffset(34)] public ushort IoPort;
    [FieldOffset(36)] public uint IoCount;
    [FieldOffset(40)] public ulong IoDataOffset;

    // KVM_EXIT_MMIO
    [FieldOffset(32)] public ulong MmioPhysAddr;
    [FieldOffset(40)] public fixed byte MmioData[8];
    [FieldOffset(48)] public uint MmioLen;
    [FieldOffset(52)] public byte MmioIsWrite;

    // KVM_EXIT_FAIL_ENTRY
    [FieldOffset(32)] public ulong FailEntryHardwareReason;
    [FieldOffset(40)] public uint FailEntryCpu;

    // KVM_EXIT_INTERNAL_ERROR (internal and its emulation_failure view)
    [FieldOffset(32)] public uint InternalSuberror;
    [FieldOffset(36)] public uint InternalNdata;
    [FieldOffset(40)] public fixed ulong InternalData[16];
    [FieldOffset(40)] public ulong EmulationFailureFlags;
    [FieldOffset(48)] public byte EmulationFailureInsnSize;
    [FieldOffset(49)] public fixed byte EmulationFailureInsnBytes[15];

    // KVM_EXIT_SYSTEM_EVENT
    [FieldOffset(32)] public uint SystemEventType;
    [FieldOffset(36)] public uint SystemEventNdata;
    [FieldOffset(40)] public fixed ulong SystemEventData[16];

    [FieldOffset(288)] public ulong KvmValidRegs;
    [FieldOffset(296)] public ulong KvmDirtyRegs;
}

/// <summary>struct kvm_vcpu_init (arm64): the target CPU type and feature bitmap for KVM_ARM_VCPU_INIT.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmVcpuInit
{
    public uint Target;
    public fixed uint Features[7];
}

/// <summary>struct kvm_one_reg: a register id and the address of the value (KVM_GET/SET_ONE_REG).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmOneReg
{
    public ulong Id;
    public ulong Addr;
}

/// <summary>struct kvm_create_device: an in-kernel device (the arm64 vGIC and ITS); KVM fills in the fd.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmCreateDevice
{
    public uint Type;
    public uint Fd;
    public uint Flags;
}

/// <summary>struct kvm_device_attr: one attribute of an in-kernel device; Addr points at the value.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmDeviceAttr
{
    public uint Flags;
    public uint Group;
    public ulong Attr;
    public ulong Addr;
}
