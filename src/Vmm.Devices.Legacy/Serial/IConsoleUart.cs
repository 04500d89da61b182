namespace Vmm.Devices.Legacy.Serial;

/// <summary>A UART that is the VM's console (the 16550 on x86, the PL011 on arm64): host input in, batched output
/// out. The console front end uses only this, so it behaves the same on every architecture.</summary>
public interface IConsoleUart
{
    /// <summary>Queues all of <paramref name="input"/> for the guest, waiting while the host buffer is full.</summary>
    bool Enqueue(ReadOnlySpan<byte> input, CancellationToken cancellationToken = default);

    /// <summary>Writes any batched output to the sink now.</summary>
    void FlushOutput();
}
