using System.Runtime.InteropServices;
using Vmm.Core.Interop;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm;

/// <summary>
/// One vCPU: its fd and its mmapped <c>kvm_run</c> page, read in place by the run loop, and its MP state. The
/// architectures' register accessors and setup are in <c>KvmVcpu.X86.cs</c> (CPUID, MSRs, FPU, LAPIC LINT pins and
/// the boot registers) and <c>KvmVcpu.Arm64.cs</c> (KVM_ARM_VCPU_INIT and ONE_REG).
/// </summary>
public sealed unsafe partial class KvmVcpu : IDisposable
{
    private readonly KvmVm _vm;
    private readonly KvmFd _fd;
    private readonly RunMapping _run;

    internal KvmVcpu(KvmVm vm, KvmFd fd, int index)
    {
        _vm = vm;
        _fd = fd;
        Index = index;
        int size = vm.System.VcpuMmapSize;
        nint p = Libc.mmap(0, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd.Fd, 0);
        if (p == Libc.MAP_FAILED)
        {
            var e = KvmException.FromLastError($"mmap(kvm_run of vCPU {index})");
            fd.Dispose();
            throw e;
        }
        _run = new RunMapping(p, size);
        RunSize = size;
    }

    /// <summary>The vCPU id: its APIC id on x86, its MPIDR affinity on arm64.</summary>
    public int Index { get; }

    internal KvmVm Vm => _vm;

    /// <summary>The shared kvm_run page. Valid until Dispose; only the vCPU's own thread reads the exit data.</summary>
    internal KvmRun* Run => (KvmRun*)_run.Address;

    internal int RunSize { get; }

    /// <summary>KVM_RUN; returns 0 or the errno (EINTR when kicked).</summary>
    internal int RunOnce()
    {
        int r = _fd.TryIoctl(KvmIoctls.Run, null, out int errno);
        return r < 0 ? errno : 0;
    }

    public uint GetMpState()
    {
        KvmMpState state;
        _fd.Ioctl(KvmIoctls.GetMpState, &state, "KVM_GET_MP_STATE");
        return state.MpState;
    }

    public void SetMpState(uint mpState)
    {
        var state = new KvmMpState { MpState = mpState };
        _fd.Ioctl(KvmIoctls.SetMpState, &state, "KVM_SET_MP_STATE");
    }

    public void Dispose()
    {
        _run.Dispose();
        _fd.Dispose();
    }

    private sealed class RunMapping : SafeHandle
    {
        private readonly int _size;

        public RunMapping(nint address, int size) : base(0, ownsHandle: true)
        {
            SetHandle(address);
            _size = size;
        }

        public nint Address => handle;

        public override bool IsInvalid => handle == 0 || handle == Libc.MAP_FAILED;

        protected override bool ReleaseHandle() => Libc.munmap(handle, (nuint)_size) == 0;
    }
}
