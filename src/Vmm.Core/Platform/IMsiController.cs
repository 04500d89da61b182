namespace Vmm.Core.Platform;

/// <summary>Allocates message-signalled interrupt vectors (MSI-X table entries are backed by these).</summary>
public interface IMsiController
{
    IMsiVector AllocateVector();
}

/// <summary>One MSI route: the guest-programmed address/data pair and a way to fire it. With KVM this is a GSI
/// routing entry plus an irqfd, so <see cref="Trigger"/> is a single eventfd write from any thread.</summary>
public interface IMsiVector : IDisposable
{
    /// <summary>Reprograms the route (guest wrote the MSI-X table entry).</summary>
    void Update(ulong address, uint data);

    void Trigger();
}
