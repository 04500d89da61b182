using Vmm.Core.Events;
using Vmm.Core.Platform;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>KVM_IOEVENTFD bindings: a guest write to a PIO or MMIO address signals an eventfd inside the kernel,
/// without an exit to the VMM. The registration holds a reference on the eventfd so the deassign on dispose can
/// name the same fd; registrations still live when the VM is disposed are released then.</summary>
internal sealed unsafe class KvmIoEventRegistrar(KvmVm vm, bool anyLength) : IIoEventRegistrar, IDisposable
{
    private readonly Lock _lock = new();
    private readonly HashSet<Registration> _live = new();

    public IDisposable Register(IoEventSpace space, ulong address, uint length, EventFd eventFd, ulong? dataMatch = null)
    {
        ArgumentNullException.ThrowIfNull(eventFd);
        bool lengthOk = length is 1 or 2 or 4 or 8 || (length == 0 && anyLength && space == IoEventSpace.Mmio && dataMatch is null);
        if (!lengthOk)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"ioeventfd length {length} is not 1, 2, 4 or 8");
        }
        if (space == IoEventSpace.Pio && (address > 0xFFFF || address + length > 0x10000))
        {
            throw new ArgumentOutOfRangeException(nameof(address), $"port 0x{address:x} is outside the 64 KiB I/O space");
        }
        if (address + length < address)
        {
            throw new ArgumentOutOfRangeException(nameof(address), "ioeventfd range wraps around");
        }
        var args = new KvmIoeventfd
        {
            Addr = address,
            Len = length,
            Datamatch = dataMatch ?? 0,
            Flags = (space == IoEventSpace.Pio ? KvmConstants.IoeventfdFlagPio : 0)
                | (dataMatch is null ? 0 : KvmConstants.IoeventfdFlagDatamatch),
        };
        bool added = false;
        eventFd.Handle.DangerousAddRef(ref added);
        try
        {
            args.Fd = eventFd.Handle.Fd;
            vm.Handle.Ioctl(KvmIoctls.Ioeventfd, &args, $"KVM_IOEVENTFD({space} 0x{address:x}/{length})");
        }
        catch
        {
            eventFd.Handle.DangerousRelease();
            throw;
        }
        var registration = new Registration(this, vm, eventFd, args);
        lock (_lock)
        {
            _live.Add(registration);
        }
        return registration;
    }

    /// <summary>Deassigns every registration still live (the VM is going away).</summary>
    public void Dispose()
    {
        Registration[] live;
        lock (_lock)
        {
            live = [.. _live];
        }
        foreach (Registration r in live)
        {
            r.Dispose();
        }
    }

    private void Forget(Registration registration)
    {
        lock (_lock)
        {
            _live.Remove(registration);
        }
    }

    private sealed class Registration(KvmIoEventRegistrar owner, KvmVm vm, EventFd eventFd, KvmIoeventfd args) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }
            try
            {
                if (!vm.Handle.IsClosed)
                {
                    KvmIoeventfd deassign = args;
                    deassign.Flags |= KvmConstants.IoeventfdFlagDeassign;
                    vm.Handle.Ioctl(KvmIoctls.Ioeventfd, &deassign, $"KVM_IOEVENTFD(deassign 0x{args.Addr:x})");
                }
            }
            finally
            {
                eventFd.Handle.DangerousRelease();
                owner.Forget(this);
            }
        }
    }
}
