using Vmm.Core.Platform;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>A legacy interrupt line driven with KVM_IRQ_LINE (in-kernel PIC and IOAPIC). Allocation-free.</summary>
internal sealed unsafe class KvmInterruptLine(KvmVm vm, int gsi) : IInterruptLine
{
    public int Gsi { get; } = gsi;

    public void Trigger()
    {
        SetLevel(true);
        SetLevel(false);
    }

    public void SetLevel(bool asserted)
    {
        var level = new KvmIrqLevel { Irq = (uint)Gsi, Level = asserted ? 1 : 0 };
        vm.Handle.Ioctl(KvmIoctls.IrqLine, &level, "KVM_IRQ_LINE");
    }
}
