using System.Runtime.InteropServices;
using Vmm.Core.Memory;
using Vmm.Kvm.Arch;
using Vmm.Kvm.Cpu;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm;

/// <summary>
/// The KVM subsystem (/dev/kvm): API version and capability checks, the host's supported CPUID and MSR list, and
/// the factory for VMs. Typical use by the VMM's composer:
/// <code>
/// using var kvm = KvmSystem.Open(log);                 // KvmUnavailableException: print its Message and exit
/// using var vm = kvm.CreateVm(memory);                 // memory slots, TSS, irqchip, PIT
/// // build devices with vm.InterruptLine(gsi), vm.Msi, vm.IoEvents, vm.MemoryMapper, vm.Control; fill the buses
/// VmRunResult result = vm.Run(bootState, cpuCount, pioBus, mmioBus);
/// </code>
/// </summary>
public sealed unsafe class KvmSystem : IDisposable
{
    public const string DefaultPath = "/dev/kvm";

    private static readonly (int Cap, string Name)[] RequiredCapabilities =
    [
        (KvmCaps.Irqchip, "KVM_CAP_IRQCHIP"),
        (KvmCaps.UserMemory, "KVM_CAP_USER_MEMORY"),
        (KvmCaps.IrqRouting, "KVM_CAP_IRQ_ROUTING"),
        (KvmCaps.Irqfd, "KVM_CAP_IRQFD"),
        (KvmCaps.Ioeventfd, "KVM_CAP_IOEVENTFD"),
        (KvmCaps.ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
        (KvmCaps.MpState, "KVM_CAP_MP_STATE"),
    ];

    private readonly KvmFd _fd;
    private KvmCpuidEntry2[]? _supportedCpuid;
    private uint[]? _msrIndexList;
    private CpuidHostFacts? _cpuidHostFacts;

    private KvmSystem(KvmFd fd, HostProfile profile, Action<string> log)
    {
        _fd = fd;
        Profile = profile;
        Log = log;
    }

    /// <summary>What differs between KVM on x86_64 and on arm64 (the process's architecture).</summary>
    internal KvmArchitecture Architecture { get; } = KvmArchitecture.Host;

    /// <summary>The guest architecture this KVM runs: the host's ("x86_64" or "arm64").</summary>
    public string ArchitectureName => Architecture.Name;

    /// <summary>The most vCPUs one VM can have here: KVM's limit and the platform's (x86 MP table, arm64 GIC
    /// redistributor space).</summary>
    public int MaxCpusPerVm => Math.Min(MaxVcpus, Architecture.MaxCpus);

    /// <summary>The host-specific handling (PVM or an ordinary VMX/SVM host).</summary>
    public HostProfile Profile { get; }

    internal Action<string> Log { get; }

    internal KvmFd Handle => _fd;

    /// <summary>Size of each vCPU's kvm_run mapping.</summary>
    public int VcpuMmapSize { get; private set; }

    /// <summary>Opens /dev/kvm and checks the API version and the capabilities the VMM relies on.</summary>
    /// <exception cref="KvmUnavailableException">KVM cannot be used; the message is one printable line.</exception>
    public static KvmSystem Open(Action<string>? log = null, string path = DefaultPath, HostProfile? profile = null)
    {
        log ??= static _ => { };
        int fd = KvmNative.Open(path, KvmNative.O_RDWR | KvmNative.O_CLOEXEC);
        if (fd < 0)
        {
            int errno = KvmNative.LastErrno;
            throw new KvmUnavailableException($"cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }
        var handle = new KvmFd(fd);
        try
        {
            int version = handle.Ioctl(KvmIoctls.GetApiVersion, 0, "KVM_GET_API_VERSION");
            if (version != KvmConstants.ApiVersion)
            {
                throw new KvmUnavailableException($"{path}: unsupported KVM API version {version} (need {KvmConstants.ApiVersion})");
            }
            var system = new KvmSystem(handle, profile ?? HostProfile.Detect(), log);
            foreach ((int cap, string name) in RequiredCapabilities.Concat(system.Architecture.RequiredCapabilities))
            {
                if (system.CheckExtension(cap) <= 0)
                {
                    throw new KvmUnavailableException($"{path}: KVM lacks {name}");
                }
            }
            system.VcpuMmapSize = handle.Ioctl(KvmIoctls.GetVcpuMmapSize, 0, "KVM_GET_VCPU_MMAP_SIZE");
            if (system.VcpuMmapSize < sizeof(KvmRun))
            {
                throw new KvmUnavailableException($"{path}: vCPU mmap size {system.VcpuMmapSize} is too small");
            }
            log($"kvm: {path} API {version}, host profile: {system.Profile.Description}");
            return system;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value.</summary>
    public int CheckExtension(int capability) =>
        _fd.Ioctl(KvmIoctls.CheckExtension, (nuint)capability, "KVM_CHECK_EXTENSION");

    /// <summary>The largest vCPU count KVM allows for one VM.</summary>
    public int MaxVcpus
    {
        get
        {
            int max = CheckExtension(KvmCaps.MaxVcpus);
            return max > 0 ? max : Math.Max(CheckExtension(KvmCaps.NrVcpus), 4);
        }
    }

    /// <summary>What the CPUID rules need to know beyond KVM_GET_SUPPORTED_CPUID; read once.</summary>
    internal CpuidHostFacts CpuidHostFacts => _cpuidHostFacts ??=
        new CpuidHostFacts(CheckExtension(KvmCaps.TscDeadlineTimer) > 0, CpuidHostFacts.HostBrandString());

    /// <summary>The host CPU's vendor, from the supported CPUID's leaf 0.</summary>
    public CpuVendor Vendor => CpuVendorId.Of(SupportedCpuid);

    /// <summary>Whether a crash report after a triple fault can show the guest's registers on this host.</summary>
    public bool KeepsRegistersAfterShutdown => Profile.KeepsRegistersAfterShutdown(Vendor);

    private KvmCpuidEntry2[] SupportedCpuid => _supportedCpuid ??= QuerySupportedCpuid();

    /// <summary>KVM_GET_SUPPORTED_CPUID, cached; callers get their own copy to edit.</summary>
    public KvmCpuidEntry2[] GetSupportedCpuid()
    {
        return (KvmCpuidEntry2[])SupportedCpuid.Clone();
    }

    private KvmCpuidEntry2[] QuerySupportedCpuid()
    {
        for (int capacity = 128; capacity <= 4096; capacity *= 2)
        {
            int bytes = sizeof(KvmCpuid2) + capacity * sizeof(KvmCpuidEntry2);
            byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
            try
            {
                ((KvmCpuid2*)buffer)->Nent = (uint)capacity;
                if (_fd.TryIoctl(KvmIoctls.GetSupportedCpuid, buffer, out int errno) < 0)
                {
                    if (errno == KvmNative.E2BIG)
                    {
                        continue;
                    }
                    throw new KvmException("KVM_GET_SUPPORTED_CPUID", errno);
                }
                // Safe: the buffer holds `capacity` entries and the kernel's count is clamped to that.
                uint count = Math.Min(((KvmCpuid2*)buffer)->Nent, (uint)capacity);
                return new ReadOnlySpan<KvmCpuidEntry2>(buffer + sizeof(KvmCpuid2), (int)count).ToArray();
            }
            finally
            {
                NativeMemory.Free(buffer);
            }
        }
        throw new KvmException("KVM_GET_SUPPORTED_CPUID returned more than 4096 entries");
    }

    /// <summary>KVM_GET_MSR_INDEX_LIST: the MSRs this KVM saves/restores (and so the only ones we may set).</summary>
    public ReadOnlySpan<uint> MsrIndexList => _msrIndexList ??= QueryMsrIndexList();

    private uint[] QueryMsrIndexList()
    {
        for (int capacity = 256; capacity <= 16384; capacity *= 2)
        {
            int bytes = sizeof(KvmMsrList) + capacity * sizeof(uint);
            byte* buffer = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
            try
            {
                ((KvmMsrList*)buffer)->Nmsrs = (uint)capacity;
                if (_fd.TryIoctl(KvmIoctls.GetMsrIndexList, buffer, out int errno) < 0)
                {
                    if (errno == KvmNative.E2BIG)
                    {
                        continue;
                    }
                    throw new KvmException("KVM_GET_MSR_INDEX_LIST", errno);
                }
                // Safe: the buffer holds `capacity` indices and the kernel's count is clamped to that.
                uint count = Math.Min(((KvmMsrList*)buffer)->Nmsrs, (uint)capacity);
                return new ReadOnlySpan<uint>(buffer + sizeof(KvmMsrList), (int)count).ToArray();
            }
            finally
            {
                NativeMemory.Free(buffer);
            }
        }
        throw new KvmException("KVM_GET_MSR_INDEX_LIST returned more than 16384 entries");
    }

    /// <summary>Creates a VM with <paramref name="memory"/> installed as its RAM slots and the architecture's platform
    /// pieces (x86: TSS, identity map, in-kernel PIC/IOAPIC/LAPIC, PIT; arm64: <paramref name="cpuCount"/> vCPUs, the
    /// GICv3 and its ITS). On arm64 <see cref="KvmVm.Run"/> must then run exactly <paramref name="cpuCount"/> vCPUs.</summary>
    public KvmVm CreateVm(GuestMemory memory, int cpuCount = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        int fd = _fd.Ioctl(KvmIoctls.CreateVm, 0, "KVM_CREATE_VM");
        return new KvmVm(this, new KvmFd(fd), memory, cpuCount);
    }

    public void Dispose() => _fd.Dispose();
}
