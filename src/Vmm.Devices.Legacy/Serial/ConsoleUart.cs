namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// A UART that is the VM's console (the <see cref="Uart16550"/> on x86, the <see cref="Pl011"/> on arm64): what the two
/// share, so the console behaves the same on every architecture. Guest output goes through a line-batching buffer;
/// host input waits in a bounded host-side buffer that the UART's receive FIFO drains as the guest reads, and when
/// that buffer is full <see cref="TryEnqueue"/> accepts fewer bytes and <see cref="Enqueue"/> waits: the host drops
/// nothing. Each UART keeps its registers and interrupt logic; one lock (<see cref="StateLock"/>) guards both.
/// </summary>
public abstract class ConsoleUart : IDisposable
{
    private readonly ManualResetEventSlim _inputSpace = new(initialState: true);

    private protected ConsoleUart(Stream output, Uart16550Options options)
    {
        ArgumentNullException.ThrowIfNull(output);
        options.Validate();
        Output = new SerialOutputBuffer(output, options.OutputBufferSize, options.OutputIdleFlushDelay);
        HostInput = new ByteRing(options.HostInputCapacity);
    }

    private protected Lock StateLock { get; } = new();

    private protected SerialOutputBuffer Output { get; }

    /// <summary>Host input the receive FIFO has no room for yet.</summary>
    private protected ByteRing HostInput { get; }

    private protected bool Disposed { get; private set; }

    /// <summary>Signalled while the host-side input buffer has room (and after disposal, to release waiters).</summary>
    public WaitHandle InputSpaceAvailable => _inputSpace.WaitHandle;

    /// <summary>Transmitted bytes lost because the output sink failed.</summary>
    public long LostOutputBytes => Output.LostBytes;

    /// <summary>Moves waiting host input into the receive FIFO as far as it has room; returns how many bytes moved.</summary>
    private protected abstract int RefillReceiveFifoLocked();

    /// <summary>Drives the interrupt line from the current state.</summary>
    private protected abstract void UpdateInterruptLocked();

    /// <summary>Queues host input for the guest without blocking; returns how many leading bytes were accepted
    /// (fewer than <paramref name="input"/>.Length only when the host buffer is full).</summary>
    public int TryEnqueue(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return 0;
        }
        lock (StateLock)
        {
            if (Disposed)
            {
                return 0;
            }
            int accepted = 0;
            while (accepted < input.Length)
            {
                // Through the host buffer so that bytes already waiting there keep their place in line.
                int queued = HostInput.Push(input[accepted..]);
                accepted += queued;
                int moved = RefillReceiveFifoLocked();
                if (queued == 0 && moved == 0)
                {
                    break;
                }
            }
            UpdateInputSpaceLocked();
            UpdateInterruptLocked();
            return accepted;
        }
    }

    /// <summary>Queues all of <paramref name="input"/>, waiting while the host buffer is full.</summary>
    /// <returns>False if <paramref name="cancellationToken"/> fired or the device was disposed first.</returns>
    public bool Enqueue(ReadOnlySpan<byte> input, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            input = input[TryEnqueue(input)..];
            if (input.IsEmpty)
            {
                return true;
            }
            try
            {
                _inputSpace.Wait(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
            lock (StateLock)
            {
                if (Disposed)
                {
                    return false;
                }
            }
        }
    }

    /// <summary>Writes any batched output to the sink now.</summary>
    public void FlushOutput() => Output.Flush();

    /// <summary>Keeps <see cref="InputSpaceAvailable"/> equal to "the host buffer has room"; Set/Reset only on a
    /// change keeps the guest's read path cheap.</summary>
    private protected void UpdateInputSpaceLocked()
    {
        bool space = HostInput.Free > 0 || Disposed;
        if (space != _inputSpace.IsSet)
        {
            if (space)
            {
                _inputSpace.Set();
            }
            else
            {
                _inputSpace.Reset();
            }
        }
    }

    /// <summary>Flushes output, stops the flush timer and releases input waiters. The sink stays open.</summary>
    public void Dispose()
    {
        lock (StateLock)
        {
            if (Disposed)
            {
                return;
            }
            Disposed = true;
            _inputSpace.Set();
        }
        Output.Dispose();
        GC.SuppressFinalize(this);
    }
}
