using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Platform;
using Vmm.Kvm.Vcpus;

namespace Vmm.Kvm;

/// <summary>
/// One KVM virtual machine: guest RAM installed as memory slots, the KVM TSS and identity-map pages, the in-kernel
/// PIC/IOAPIC/LAPIC and PIT, and the platform services devices are built with (<see cref="InterruptLine"/>,
/// <see cref="Msi"/>, <see cref="IoEvents"/>, <see cref="MemoryMapper"/>, <see cref="Control"/>).
/// <see cref="Run"/> creates the vCPUs and runs them until the VM stops. The caller keeps ownership of the
/// <see cref="GuestMemory"/> and must dispose it after this VM.
/// </summary>
public sealed unsafe class KvmVm : IDisposable
{
    private readonly KvmFd _fd;
    private readonly KvmMemoryMapper _memoryMapper;
    private readonly KvmMsiController _msi;
    private readonly KvmIoEventRegistrar _ioEvents;
    private readonly VmControl _control = new();
    private int _ran;

    internal KvmVm(KvmSystem system, KvmFd fd, GuestMemory memory)
    {
        _fd = fd;
        System = system;
        Memory = memory;
        try
        {
            int slot = 0;
            foreach (GuestRegion region in memory.Regions)
            {
                SetMemorySlot((uint)slot++, region.Start.Value, region.Size, region.HostAddress);
            }
            _fd.Ioctl(KvmIoctls.SetTssAddr, (nuint)X86Layout.KvmTssAddress, "KVM_SET_TSS_ADDR");
            ulong identityMap = X86Layout.KvmIdentityMapAddress;
            _fd.Ioctl(KvmIoctls.SetIdentityMapAddr, &identityMap, "KVM_SET_IDENTITY_MAP_ADDR");
            _fd.Ioctl(KvmIoctls.CreateIrqchip, 0, "KVM_CREATE_IRQCHIP");
            var pit = new KvmPitConfig { Flags = KvmConstants.PitSpeakerDummy };
            _fd.Ioctl(KvmIoctls.CreatePit2, &pit, "KVM_CREATE_PIT2");

            int slots = system.CheckExtension(KvmCaps.NrMemslots);
            _memoryMapper = new KvmMemoryMapper(this, firstSlot: slot, slotLimit: slots > 0 ? slots : 32);
            _msi = new KvmMsiController(this);
            _ioEvents = new KvmIoEventRegistrar(this, system.CheckExtension(KvmCaps.IoeventfdAnyLength) > 0);
        }
        catch
        {
            _fd.Dispose();
            throw;
        }
    }

    public KvmSystem System { get; }

    public GuestMemory Memory { get; }

    internal KvmFd Handle => _fd;

    /// <summary>MSI vectors (GSI routes + irqfds) for MSI-X capable devices.</summary>
    public IMsiController Msi => _msi;

    /// <summary>KVM_IOEVENTFD bindings for queue notifications.</summary>
    public IIoEventRegistrar IoEvents => _ioEvents;

    /// <summary>Extra memory slots (shared-memory BARs).</summary>
    public IGuestMemoryMapper MemoryMapper => _memoryMapper;

    /// <summary>Stops the VM from a device or from outside (console escape, SIGTERM). Usable before <see cref="Run"/>.</summary>
    public IVmControl Control => _control;

    /// <summary>KVM_ENABLE_CAP on the VM with one argument (tests use it to put KVM in stricter modes).</summary>
    internal unsafe void EnableCapability(uint capability, ulong argument)
    {
        var cap = new KvmEnableCap { Cap = capability, Arg0 = argument };
        _fd.Ioctl(KvmIoctls.EnableCap, &cap, "KVM_ENABLE_CAP");
    }

    /// <summary>A legacy interrupt line on <paramref name="gsi"/> (0–23, the IOAPIC pins; 0–15 also reach the PIC).</summary>
    public IInterruptLine InterruptLine(int gsi)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gsi);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(gsi, KvmMsiController.IoapicPins - 1);
        return new KvmInterruptLine(this, gsi);
    }

    /// <summary>
    /// Creates <paramref name="cpuCount"/> vCPUs (vCPU 0 in <paramref name="boot"/>'s state, the others waiting for
    /// INIT/SIPI), runs them on one thread each, and returns when the VM stops: a device or the host called
    /// <see cref="Control"/>, the guest shut down, or a vCPU hit a fatal exit (then the result carries diagnostics).
    /// Can be called once per VM.
    /// </summary>
    public VmRunResult Run(X86BootCpuState boot, int cpuCount, IoBus pioBus, IoBus mmioBus, VmRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(boot);
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpuCount, Math.Min(255, System.MaxVcpus));
        if (Interlocked.Exchange(ref _ran, 1) != 0)
        {
            throw new InvalidOperationException("a KVM VM can be run only once");
        }
        options ??= new VmRunOptions();
        var vcpus = new KvmVcpu[cpuCount];
        try
        {
            for (int i = 0; i < cpuCount; i++)
            {
                vcpus[i] = CreateVcpu(i);
                vcpus[i].ConfigureCommon(cpuCount);
                if (i == 0)
                {
                    vcpus[i].ConfigureBoot(boot);
                }
                else
                {
                    vcpus[i].SetMpState(KvmConstants.MpStateUninitialized);
                }
            }
            var runner = new VmRunner(this, vcpus, pioBus, mmioBus, _control, options);
            return runner.Run();
        }
        finally
        {
            foreach (KvmVcpu? v in vcpus)
            {
                v?.Dispose();
            }
        }
    }

    /// <summary>Creates vCPU <paramref name="index"/> (its APIC id) without configuring it; tests and
    /// <see cref="Run"/> use this.</summary>
    internal KvmVcpu CreateVcpu(int index)
    {
        int fd = _fd.Ioctl(KvmIoctls.CreateVcpu, (nuint)index, $"KVM_CREATE_VCPU({index})");
        return new KvmVcpu(this, new KvmFd(fd), index);
    }

    internal void SetMemorySlot(uint slot, ulong guestPhysicalAddress, ulong size, nint hostAddress)
    {
        var region = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = 0,
            GuestPhysAddr = guestPhysicalAddress,
            MemorySize = size,
            UserspaceAddr = (ulong)hostAddress,
        };
        _fd.Ioctl(KvmIoctls.SetUserMemoryRegion, &region,
            $"KVM_SET_USER_MEMORY_REGION(slot {slot}, 0x{guestPhysicalAddress:x}+0x{size:x})");
    }

    public void Dispose()
    {
        _ioEvents.Dispose();
        _msi.Dispose();
        _fd.Dispose();
    }
}
