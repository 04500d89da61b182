using Vmm.Core.Platform;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Platform;

/// <summary>A wired interrupt line driven with KVM_IRQ_LINE (the in-kernel PIC and IOAPIC on x86, the vGIC's SPIs on
/// arm64). <paramref name="kvmIrq"/> is the line as KVM_IRQ_LINE encodes it. Allocation-free.</summary>
internal sealed unsafe class KvmInterruptLine(KvmVm vm, int line, uint kvmIrq) : IInterruptLine
{
    public int Gsi { get; } = line;

    public void Trigger()
    {
        SetLevel(true);
        SetLevel(false);
    }

    public void SetLevel(bool asserted)
    {
        var level = new KvmIrqLevel { Irq = kvmIrq, Level = asserted ? 1 : 0 };
        vm.Handle.Ioctl(KvmIoctls.IrqLine, &level, "KVM_IRQ_LINE");
    }
}
