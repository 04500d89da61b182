using System.Runtime.CompilerServices;

namespace Vmm.Kvm.Interop;

/// <summary>
/// KVM ioctl request numbers, computed the way the kernel's <c>_IO/_IOR/_IOW/_IOWR</c> macros do
/// (asm-generic/ioctl.h: nr in bits 0–7, type in 8–15, size in 16–29, direction in 30–31) from the sizes of our
/// blittable structs, so a wrong struct size shows up as a wrong request number (and tests pin both).
/// </summary>
internal static unsafe class KvmIoctls
{
    private const uint KvmIo = 0xAE;
    private const uint DirNone = 0, DirWrite = 1, DirRead = 2;

    public static nuint Io(uint nr) => Encode(DirNone, nr, 0);
    public static nuint Ior(uint nr, int size) => Encode(DirRead, nr, size);
    public static nuint Iow(uint nr, int size) => Encode(DirWrite, nr, size);
    public static nuint Iowr(uint nr, int size) => Encode(DirRead | DirWrite, nr, size);

    private static nuint Encode(uint direction, uint nr, int size)
    {
        if ((uint)size >= 1u << 14)
        {
            throw new ArgumentOutOfRangeException(nameof(size), "ioctl argument size does not fit 14 bits");
        }
        return (nuint)((direction << 30) | ((uint)size << 16) | (KvmIo << 8) | nr);
    }

    // System ioctls (on /dev/kvm).
    public static readonly nuint GetApiVersion = Io(0x00);
    public static readonly nuint CreateVm = Io(0x01);
    public static readonly nuint GetMsrIndexList = Iowr(0x02, sizeof(KvmMsrList));
    public static readonly nuint CheckExtension = Io(0x03);
    public static readonly nuint GetVcpuMmapSize = Io(0x04);
    public static readonly nuint GetSupportedCpuid = Iowr(0x05, sizeof(KvmCpuid2));

    // VM ioctls.
    public static readonly nuint CreateVcpu = Io(0x41);
    public static readonly nuint SetUserMemoryRegion = Iow(0x46, sizeof(KvmUserspaceMemoryRegion));
    public static readonly nuint SetTssAddr = Io(0x47);
    public static readonly nuint SetIdentityMapAddr = Iow(0x48, sizeof(ulong));
    public static readonly nuint CreateIrqchip = Io(0x60);
    public static readonly nuint IrqLine = Iow(0x61, sizeof(KvmIrqLevel));
    public static readonly nuint SetGsiRouting = Iow(0x6A, sizeof(KvmIrqRouting));
    public static readonly nuint Irqfd = Iow(0x76, sizeof(KvmIrqfd));
    public static readonly nuint CreatePit2 = Iow(0x77, sizeof(KvmPitConfig));
    public static readonly nuint Ioeventfd = Iow(0x79, sizeof(KvmIoeventfd));
    public static readonly nuint EnableCap = Iow(0xA3, sizeof(KvmEnableCap));
    public static readonly nuint CreateDevice = Iowr(0xE0, sizeof(KvmCreateDevice));
    /// <summary>arm64: the preferred vCPU target for KVM_ARM_VCPU_INIT (a VM ioctl).</summary>
    public static readonly nuint ArmPreferredTarget = Ior(0xAF, sizeof(KvmVcpuInit));

    // Device ioctls (on a KVM_CREATE_DEVICE fd).
    public static readonly nuint SetDeviceAttr = Iow(0xE1, sizeof(KvmDeviceAttr));

    // vCPU ioctls.
    public static readonly nuint Run = Io(0x80);
    public static readonly nuint GetRegs = Ior(0x81, sizeof(KvmRegs));
    public static readonly nuint SetRegs = Iow(0x82, sizeof(KvmRegs));
    public static readonly nuint GetSregs = Ior(0x83, sizeof(KvmSregs));
    public static readonly nuint SetSregs = Iow(0x84, sizeof(KvmSregs));
    public static readonly nuint Translate = Iowr(0x85, sizeof(KvmTranslation));
    public static readonly nuint GetMsrs = Iowr(0x88, sizeof(KvmMsrs));
    public static readonly nuint SetMsrs = Iow(0x89, sizeof(KvmMsrs));
    public static readonly nuint GetFpu = Ior(0x8C, sizeof(KvmFpu));
    public static readonly nuint SetFpu = Iow(0x8D, sizeof(KvmFpu));
    public static readonly nuint GetLapic = Ior(0x8E, sizeof(KvmLapicState));
    public static readonly nuint SetLapic = Iow(0x8F, sizeof(KvmLapicState));
    public static readonly nuint SetCpuid2 = Iow(0x90, sizeof(KvmCpuid2));
    public static readonly nuint GetMpState = Ior(0x98, sizeof(KvmMpState));
    public static readonly nuint SetMpState = Iow(0x99, sizeof(KvmMpState));
    public static readonly nuint GetVcpuEvents = Ior(0x9F, sizeof(KvmVcpuEvents));
    public static readonly nuint SetVcpuEvents = Iow(0xA0, sizeof(KvmVcpuEvents));
    // Both ONE_REG ioctls are _IOW: the struct only carries the id and a pointer to the value.
    public static readonly nuint GetOneReg = Iow(0xAB, sizeof(KvmOneReg));
    public static readonly nuint SetOneReg = Iow(0xAC, sizeof(KvmOneReg));
    public static readonly nuint ArmVcpuInit = Iow(0xAE, sizeof(KvmVcpuInit));
}

/// <summary>KVM_CAP_* numbers (linux/kvm.h) the VMM checks.</summary>
internal static class KvmCaps
{
    public const int Irqchip = 0;
    public const int UserMemory = 3;
    public const int SetTssAddr = 4;
    public const int ExtCpuid = 7;
    public const int NrVcpus = 9;
    public const int NrMemslots = 10;
    public const int MpState = 14;
    public const int IrqRouting = 25;
    public const int Irqfd = 32;
    public const int Pit2 = 33;
    public const int Ioeventfd = 36;
    public const int SetIdentityMapAddr = 37;
    public const int VcpuEvents = 41;
    public const int MaxVcpus = 66;
    public const int OneReg = 70;
    public const int DeviceCtrl = 89;
    public const int ArmPsci02 = 102;
    public const int MsiDevid = 131;
    public const int TscDeadlineTimer = 72;
    public const int IoeventfdAnyLength = 122;
    public const int ImmediateExit = 136;
}

/// <summary>KVM_EXIT_* reasons (linux/kvm.h).</summary>
public enum KvmExitReason : uint
{
    Unknown = 0,
    Exception = 1,
    Io = 2,
    Hypercall = 3,
    Debug = 4,
    Hlt = 5,
    Mmio = 6,
    IrqWindowOpen = 7,
    Shutdown = 8,
    FailEntry = 9,
    Intr = 10,
    InternalError = 17,
    SystemEvent = 24,
}

/// <summary>Other kernel constants used with the structs in <see cref="KvmStructs"/>.</summary>
internal static class KvmConstants
{
    public const uint ApiVersion = 12;
    public const uint InternalErrorEmulation = 1;
    public const ulong EmulationFlagInstructionBytes = 1;
    public const uint PitSpeakerDummy = 1;
    public const uint IoeventfdFlagDatamatch = 1, IoeventfdFlagPio = 2, IoeventfdFlagDeassign = 4;
    public const uint IrqfdFlagDeassign = 1;
    public const uint IrqRoutingIrqchip = 1, IrqRoutingMsi = 2;
    /// <summary>KVM_CAP_X2APIC_API and its flag for 32-bit x2APIC ids in MSI routes (then address_hi bits 0–7 must be 0).</summary>
    public const uint CapX2apicApi = 129;
    public const ulong X2apicApiUse32BitIds = 1;
    public const uint IrqchipPicMaster = 0, IrqchipPicSlave = 1, IrqchipIoapic = 2;
    public const uint MpStateRunnable = 0, MpStateUninitialized = 1;
    public const uint CpuidFlagSignificantIndex = 1;
    public const uint SystemEventShutdown = 1, SystemEventReset = 2, SystemEventCrash = 3;
    public const byte IoDirectionIn = 0, IoDirectionOut = 1;
    /// <summary>KVM_MSI_VALID_DEVID: the MSI route carries the requester id (the ITS needs it).</summary>
    public const uint MsiValidDevid = 1;
    /// <summary>The kernel's limit on GSI routing entries (KVM_MAX_IRQ_ROUTES).</summary>
    public const int MaxIrqRoutes = 4096;
}

/// <summary>Marker so the constants' doc reference resolves; the structs live in KvmStructs.cs.</summary>
internal static class KvmStructs
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte Bool(bool value) => value ? (byte)1 : (byte)0;
}
