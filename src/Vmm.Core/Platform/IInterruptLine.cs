namespace Vmm.Core.Platform;

/// <summary>A legacy (IOAPIC/PIC) interrupt line as a device sees it. Implemented by the hypervisor layer
/// (KVM_IRQ_LINE or an irqfd); devices never know which.</summary>
public interface IInterruptLine
{
    /// <summary>The GSI this line drives (for the MP table and diagnostics).</summary>
    int Gsi { get; }

    /// <summary>Edge-triggered pulse.</summary>
    void Trigger();

    /// <summary>Level-triggered: assert or deassert.</summary>
    void SetLevel(bool asserted);
}
