using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Tests;

/// <summary>Struct sizes and field offsets pinned to linux/kvm.h on x86_64 (values printed by a C program with
/// sizeof/offsetof).</summary>
public unsafe class StructLayoutTests
{
    [Fact]
    public void SizesMatchKernel()
    {
        Assert.Equal(32, sizeof(KvmUserspaceMemoryRegion));
        Assert.Equal(144, sizeof(KvmRegs));
        Assert.Equal(312, sizeof(KvmSregs));
        Assert.Equal(24, sizeof(KvmSegment));
        Assert.Equal(16, sizeof(KvmDtable));
        Assert.Equal(8, sizeof(KvmCpuid2));
        Assert.Equal(40, sizeof(KvmCpuidEntry2));
        Assert.Equal(8, sizeof(KvmMsrs));
        Assert.Equal(16, sizeof(KvmMsrEntry));
        Assert.Equal(4, sizeof(KvmMsrList));
        Assert.Equal(8, sizeof(KvmIrqRouting));
        Assert.Equal(48, sizeof(KvmIrqRoutingEntry));
        Assert.Equal(32, sizeof(KvmIrqfd));
        Assert.Equal(104, sizeof(KvmEnableCap));
        Assert.Equal(64, sizeof(KvmIoeventfd));
        Assert.Equal(8, sizeof(KvmIrqLevel));
        Assert.Equal(64, sizeof(KvmPitConfig));
        Assert.Equal(64, sizeof(KvmVcpuEvents));
        Assert.Equal(24, sizeof(KvmTranslation));
        Assert.Equal(416, sizeof(KvmFpu));
        Assert.Equal(1024, sizeof(KvmLapicState));
        Assert.Equal(4, sizeof(KvmMpState));
        Assert.Equal(152, sizeof(KvmNative.SigActionStruct));
    }

    private static int Offset<T>(ref T root, ref byte field) where T : unmanaged =>
        (int)Unsafe.ByteOffset(ref Unsafe.As<T, byte>(ref root), ref field);

    [Fact]
    public void KvmRunOffsetsMatchKernel()
    {
        KvmRun run = default;
        Assert.Equal(1, Offset(ref run, ref run.ImmediateExit));
        Assert.Equal(8, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.ExitReason)));
        Assert.Equal(32, Offset(ref run, ref run.IoDirection));
        Assert.Equal(33, Offset(ref run, ref run.IoSize));
        Assert.Equal(34, Offset(ref run, ref Unsafe.As<ushort, byte>(ref run.IoPort)));
        Assert.Equal(36, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.IoCount)));
        Assert.Equal(40, Offset(ref run, ref Unsafe.As<ulong, byte>(ref run.IoDataOffset)));
        Assert.Equal(32, Offset(ref run, ref Unsafe.As<ulong, byte>(ref run.MmioPhysAddr)));
        Assert.Equal(40, Offset(ref run, ref run.MmioData[0]));
        Assert.Equal(48, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.MmioLen)));
        Assert.Equal(52, Offset(ref run, ref run.MmioIsWrite));
        Assert.Equal(32, Offset(ref run, ref Unsafe.As<ulong, byte>(ref run.FailEntryHardwareReason)));
        Assert.Equal(40, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.FailEntryCpu)));
        Assert.Equal(36, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.InternalNdata)));
        Assert.Equal(40, Offset(ref run, ref Unsafe.As<ulong, byte>(ref run.EmulationFailureFlags)));
        Assert.Equal(48, Offset(ref run, ref run.EmulationFailureInsnSize));
        Assert.Equal(49, Offset(ref run, ref run.EmulationFailureInsnBytes[0]));
        Assert.Equal(32, Offset(ref run, ref Unsafe.As<uint, byte>(ref run.SystemEventType)));
        Assert.Equal(288, Offset(ref run, ref Unsafe.As<ulong, byte>(ref run.KvmValidRegs)));
    }

    [Fact]
    public void OtherKeyOffsetsMatchKernel()
    {
        Assert.Equal(128, (int)Marshal.OffsetOf<KvmRegs>(nameof(KvmRegs.Rip)));
        Assert.Equal(120, (int)Marshal.OffsetOf<KvmRegs>(nameof(KvmRegs.R15)));
        Assert.Equal(144, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Tr)));
        Assert.Equal(168, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Ldt)));
        Assert.Equal(192, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Gdt)));
        Assert.Equal(224, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Cr0)));
        Assert.Equal(264, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.Efer)));
        Assert.Equal(280, (int)Marshal.OffsetOf<KvmSregs>(nameof(KvmSregs.InterruptBitmap)));
        Assert.Equal(12, (int)Marshal.OffsetOf<KvmSegment>(nameof(KvmSegment.Selector)));
        Assert.Equal(22, (int)Marshal.OffsetOf<KvmSegment>(nameof(KvmSegment.Unusable)));
        Assert.Equal(12, (int)Marshal.OffsetOf<KvmCpuidEntry2>(nameof(KvmCpuidEntry2.Eax)));
        Assert.Equal(24, (int)Marshal.OffsetOf<KvmCpuidEntry2>(nameof(KvmCpuidEntry2.Edx)));
        Assert.Equal(8, (int)Marshal.OffsetOf<KvmMsrEntry>(nameof(KvmMsrEntry.Data)));
        Assert.Equal(16, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.MsiAddressLo)));
        Assert.Equal(24, (int)Marshal.OffsetOf<KvmIrqRoutingEntry>(nameof(KvmIrqRoutingEntry.MsiData)));
        Assert.Equal(20, (int)Marshal.OffsetOf<KvmIoeventfd>(nameof(KvmIoeventfd.Fd)));
        Assert.Equal(24, (int)Marshal.OffsetOf<KvmIoeventfd>(nameof(KvmIoeventfd.Flags)));
        Assert.Equal(16, (int)Marshal.OffsetOf<KvmVcpuEvents>(nameof(KvmVcpuEvents.SipiVector)));
        Assert.Equal(20, (int)Marshal.OffsetOf<KvmVcpuEvents>(nameof(KvmVcpuEvents.Flags)));
        Assert.Equal(56, (int)Marshal.OffsetOf<KvmVcpuEvents>(nameof(KvmVcpuEvents.ExceptionPayload)));
        Assert.Equal(16, (int)Marshal.OffsetOf<KvmTranslation>(nameof(KvmTranslation.Valid)));
        Assert.Equal(128, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.Fcw)));
        Assert.Equal(408, (int)Marshal.OffsetOf<KvmFpu>(nameof(KvmFpu.Mxcsr)));
        Assert.Equal(24, (int)Marshal.OffsetOf<KvmUserspaceMemoryRegion>(nameof(KvmUserspaceMemoryRegion.UserspaceAddr)));
        Assert.Equal(136, (int)Marshal.OffsetOf<KvmNative.SigActionStruct>(nameof(KvmNative.SigActionStruct.Flags)));
    }
}
