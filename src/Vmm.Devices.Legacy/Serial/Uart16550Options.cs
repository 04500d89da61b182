namespace Vmm.Devices.Legacy.Serial;

/// <summary>Sizes and timings of a <see cref="Uart16550"/>. The defaults suit a Linux serial console.</summary>
public sealed record Uart16550Options
{
    /// <summary>Receive FIFO depth in FIFO mode: 16 (a real 16550A, the default) or 64 (vm-superio's size).
    /// The host refills the FIFO as soon as the guest reads a byte, so the depth barely changes throughput; it is
    /// observable only through loopback overruns.</summary>
    public int ReceiveFifoSize { get; init; } = 16;

    /// <summary>Host-side input bytes held back while the receive FIFO is full (backpressure, never dropped).</summary>
    public int HostInputCapacity { get; init; } = 4096;

    /// <summary>Size of the output batch buffer; a full buffer is flushed even without a newline.</summary>
    public int OutputBufferSize { get; init; } = 4096;

    /// <summary>Longest time a transmitted byte waits in the output buffer when no newline follows it.</summary>
    public TimeSpan OutputIdleFlushDelay { get; init; } = TimeSpan.FromMilliseconds(10);

    internal void Validate()
    {
        if (ReceiveFifoSize is not (16 or 64))
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveFifoSize), ReceiveFifoSize, "must be 16 or 64");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(HostInputCapacity, 1, nameof(HostInputCapacity));
        ArgumentOutOfRangeException.ThrowIfLessThan(OutputBufferSize, 1, nameof(OutputBufferSize));
        if (OutputIdleFlushDelay < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(OutputIdleFlushDelay), OutputIdleFlushDelay, "must not be negative");
        }
    }
}
