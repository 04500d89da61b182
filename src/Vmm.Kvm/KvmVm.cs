using Vmm.Core.Arch;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Kvm.Arch;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Platform;
using Vmm.Kvm.Vcpus;

namespace Vmm.Kvm;

/// <summary>
/// One KVM virtual machine: guest RAM installed as memory slots, the architecture's platform pieces
/// (<see cref="KvmArchitecture.SetUpVm"/>: on x86 the TSS, PIC/IOAPIC/LAPIC and PIT; on arm64 the vCPUs and the
/// GICv3 with its ITS), and the platform services devices are built with (<see cref="InterruptLine"/>,
/// <see cref="MsiForDevice"/>, <see cref="IoEvents"/>, <see cref="MemoryMapper"/>, <see cref="Control"/>).
/// <see cref="Run"/> runs the vCPUs until the VM stops. The caller keeps ownership of the
/// <see cref="GuestMemory"/> and must dispose it after this VM.
/// </summary>
public sealed unsafe class KvmVm : IDisposable
{
    private readonly KvmFd _fd;
    private readonly KvmMemoryMapper _memoryMapper;
    private readonly KvmMsiController _msi;
    private readonly KvmIoEventRegistrar _ioEvents;
    private readonly VmControl _control = new();
    private readonly List<KvmDevice> _devices = [];
    private KvmVcpu[]? _preparedVcpus;
    private int _ran;

    internal KvmVm(KvmSystem system, KvmFd fd, GuestMemory memory, int cpuCount)
    {
        _fd = fd;
        System = system;
        Memory = memory;
        Architecture = system.Architecture;
        try
        {
            int slot = 0;
            foreach (GuestRegion region in memory.Regions)
            {
                SetMemorySlot((uint)slot++, region.Start.Value, region.Size, region.HostAddress);
            }
            Architecture.SetUpVm(this, cpuCount);

            int slots = system.CheckExtension(KvmCaps.NrMemslots);
            _memoryMapper = new KvmMemoryMapper(this, firstSlot: slot, slotLimit: slots > 0 ? slots : 32);
            _msi = new KvmMsiController(this, Architecture.DefaultRoutes, Architecture.MsiRoutesCarryDeviceId);
            _ioEvents = new KvmIoEventRegistrar(this, system.CheckExtension(KvmCaps.IoeventfdAnyLength) > 0);
        }
        catch
        {
            DisposePlatform();
            _fd.Dispose();
            throw;
        }
    }

    public KvmSystem System { get; }

    public GuestMemory Memory { get; }

    internal KvmArchitecture Architecture { get; }

    internal KvmFd Handle => _fd;

    /// <summary>MSI vectors (GSI routes + irqfds) for MSI-X capable devices, without a requester id: enough on x86,
    /// where routes carry none. PCI devices on arm64 need <see cref="MsiForDevice"/>.</summary>
    public IMsiController Msi => _msi;

    /// <summary>MSI vectors whose routes carry <paramref name="requesterId"/> (bus &lt;&lt; 8 | device &lt;&lt; 3 | function), which an
    /// arm64 ITS translates by; on x86 the same as <see cref="Msi"/>.</summary>
    public IMsiController MsiForDevice(ushort requesterId) => _msi.ForDevice(requesterId);

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

    /// <summary>A wired interrupt line: on x86 GSI <paramref name="line"/> (0–23, the IOAPIC pins; 0–15 also reach
    /// the PIC), on arm64 SPI <paramref name="line"/>.</summary>
    public IInterruptLine InterruptLine(int line)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(line);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(line, Architecture.InterruptLines - 1);
        return new KvmInterruptLine(this, line, Architecture.KvmIrqFor(line));
    }

    /// <summary>
    /// Runs <paramref name="cpuCount"/> vCPUs (vCPU 0 in <paramref name="boot"/>'s state; on x86 the others wait for
    /// INIT/SIPI, on arm64 for PSCI CPU_ON) on one thread each, and returns when the VM stops: a device or the host
    /// called <see cref="Control"/>, the guest shut down, or a vCPU hit a fatal exit (then the result carries
    /// diagnostics). Can be called once per VM.
    /// </summary>
    public VmRunResult Run(BootCpuState boot, int cpuCount, IoBus pioBus, IoBus mmioBus, VmRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(boot);
        ArgumentOutOfRangeException.ThrowIfLessThan(cpuCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cpuCount, System.MaxCpusPerVm);
        if (Interlocked.Exchange(ref _ran, 1) != 0)
        {
            throw new InvalidOperationException("a KVM VM can be run only once");
        }
        options ??= new VmRunOptions();
        KvmVcpu[] vcpus = Architecture.PrepareVcpus(this, boot, cpuCount);
        try
        {
            var runner = new VmRunner(this, vcpus, pioBus, mmioBus, _control, options);
            return runner.Run();
        }
        finally
        {
            foreach (KvmVcpu v in vcpus)
            {
                v.Dispose();
            }
        }
    }

    /// <summary>Creates vCPU <paramref name="index"/> (its APIC id or MPIDR affinity) without configuring it.</summary>
    internal KvmVcpu CreateVcpu(int index)
    {
        int fd = _fd.Ioctl(KvmIoctls.CreateVcpu, (nuint)index, $"KVM_CREATE_VCPU({index})");
        return new KvmVcpu(this, new KvmFd(fd), index);
    }

    /// <summary>KVM_CREATE_DEVICE; the VM keeps the device until it is disposed.</summary>
    internal KvmDevice CreateDevice(uint type, string name)
    {
        var create = new KvmCreateDevice { Type = type };
        _fd.Ioctl(KvmIoctls.CreateDevice, &create, $"KVM_CREATE_DEVICE({name})");
        var device = new KvmDevice(new KvmFd((int)create.Fd), name);
        _devices.Add(device);
        return device;
    }

    /// <summary>vCPUs made at VM creation (arm64), kept until <see cref="Run"/> takes them.</summary>
    internal void AdoptPreparedVcpus(KvmVcpu[] vcpus) => _preparedVcpus = vcpus;

    internal KvmVcpu[] TakePreparedVcpus()
    {
        KvmVcpu[] vcpus = _preparedVcpus ?? throw new InvalidOperationException("no vCPUs were made at VM creation");
        _preparedVcpus = null;
        return vcpus;
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

    private void DisposePlatform()
    {
        if (_preparedVcpus is { } vcpus)
        {
            foreach (KvmVcpu v in vcpus)
            {
                v?.Dispose();
            }
            _preparedVcpus = null;
        }
        foreach (KvmDevice d in _devices)
        {
            d.Dispose();
        }
        _devices.Clear();
    }

    public void Dispose()
    {
        _ioEvents.Dispose();
        _msi.Dispose();
        DisposePlatform();
        _fd.Dispose();
    }
}
