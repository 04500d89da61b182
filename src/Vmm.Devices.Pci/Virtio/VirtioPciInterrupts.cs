using System.Buffers.Binary;
using Vmm.Core.Platform;
using Vmm.Core.Virtio;
using static Vmm.Devices.Pci.Virtio.VirtioPciLayout;

namespace Vmm.Devices.Pci.Virtio;

/// <summary>
/// How a virtio-pci function interrupts its driver (virtio 1.2 §4.1.4.5, §4.1.5.4): through the MSI-X vector the
/// driver chose for the queue or for configuration changes while MSI-X is enabled; otherwise by setting an ISR bit and
/// asserting INTx, which reading the ISR acknowledges. Signalled from device threads (used buffers, configuration
/// changes, DEVICE_NEEDS_RESET), so nothing here takes the common configuration's lock, which a device reset holds
/// while it joins those threads.
/// </summary>
internal sealed class VirtioPciInterrupts : IDisposable
{
    private readonly PciDevice _function;
    private readonly ushort[] _queueVectors;
    private readonly KeyValuePair<string, object?> _metricsTag;
    private IInterruptLine? _intx;
    private ushort _configVector = NoVector;
    private int _isr;

    /// <param name="function">The PCI function whose Command register gates INTx.</param>
    /// <param name="queueCount">One MSI-X vector per queue plus one for configuration changes.</param>
    /// <param name="msi">MSI vector allocator; null = MSI-X present but inert (tests).</param>
    /// <param name="deviceType">Tags the interrupts counter.</param>
    public VirtioPciInterrupts(PciDevice function, int queueCount, IMsiController? msi, VirtioDeviceType deviceType)
    {
        _function = function;
        _queueVectors = new ushort[queueCount];
        _queueVectors.AsSpan().Fill(NoVector);
        Msix = new MsixTable(queueCount + 1, msi);
        _metricsTag = VirtioPciMetrics.TagFor(deviceType);
    }

    public MsixTable Msix { get; }

    /// <summary>The INTx line's current level (when MSI-X is not enabled).</summary>
    public bool IntxAsserted { get; private set; }

    /// <summary>config_msix_vector; a vector beyond the table reads back as NO_VECTOR (virtio 1.2 §4.1.5.1.2).</summary>
    public ushort ConfigVector
    {
        get => Volatile.Read(ref _configVector);
        set => Volatile.Write(ref _configVector, ValidVector(value));
    }

    /// <summary>queue_msix_vector of queue <paramref name="queue"/>.</summary>
    public ushort QueueVector(int queue) => Volatile.Read(ref _queueVectors[queue]);

    /// <summary>Sets queue_msix_vector of queue <paramref name="queue"/>; out-of-table vectors become NO_VECTOR.</summary>
    public void SetQueueVector(int queue, ushort vector) => Volatile.Write(ref _queueVectors[queue], ValidVector(vector));

    public void ConnectIntx(IInterruptLine? line) => _intx = line;

    /// <summary>Used buffers in queue <paramref name="queue"/> (an index the device names; out of range is ignored).</summary>
    public void SignalQueue(int queue)
    {
        if ((uint)queue >= (uint)_queueVectors.Length)
        {
            return;
        }
        Interrupt(QueueVector(queue), IsrQueue);
    }

    /// <summary>A configuration change (or DEVICE_NEEDS_RESET, which the driver learns of the same way).</summary>
    public void SignalConfig() => Interrupt(ConfigVector, IsrConfig);

    /// <summary>Reads the ISR: acknowledges it and deasserts INTx (virtio 1.2 §4.1.4.5).</summary>
    public byte AcknowledgeIsr()
    {
        byte isr = (byte)Interlocked.Exchange(ref _isr, 0);
        DeassertIntx();
        return isr;
    }

    /// <summary>Device reset: no vectors chosen, nothing pending, INTx low. The MSI-X table contents survive (they
    /// belong to PCI, not virtio).</summary>
    public void Reset()
    {
        for (int i = 0; i < _queueVectors.Length; i++)
        {
            Volatile.Write(ref _queueVectors[i], NoVector);
        }
        _configVector = NoVector;
        Interlocked.Exchange(ref _isr, 0);
        DeassertIntx();
    }

    public void Dispose() => Msix.Dispose();

    private ushort ValidVector(ushort vector) => vector < (uint)Msix.VectorCount ? vector : NoVector;

    private void Interrupt(ushort vector, byte isrBit)
    {
        if (Msix.Enabled)
        {
            if (vector != NoVector && Msix.Trigger(vector))
            {
                VirtioPciMetrics.CountInterrupt(_metricsTag);
            }
            return;
        }
        Interlocked.Or(ref _isr, isrBit);
        ushort command = BinaryPrimitives.ReadUInt16LittleEndian(_function.ConfigSpace[PciConfigRegisters.Command..]);
        if ((command & PciConfigRegisters.CommandIntxDisable) == 0)
        {
            IntxAsserted = true;
            _intx?.SetLevel(true);
            VirtioPciMetrics.CountInterrupt(_metricsTag);
        }
    }

    private void DeassertIntx()
    {
        if (IntxAsserted)
        {
            IntxAsserted = false;
            _intx?.SetLevel(false);
        }
    }
}
