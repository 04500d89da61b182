using Vmm.Core.Bus;
using Vmm.Core.Platform;
using static Vmm.Devices.Legacy.Serial.UartRegisters;

namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// A 16550A UART (COM1 on the port bus: 8 ports, IRQ 4) modelled the way Linux's 8250 driver probes and drives
/// it. Transmission is instantaneous, so LSR.THRE and LSR.TEMT are always set and the transmitter never holds a
/// byte; guest output goes to a <see cref="Stream"/> through a line-batching buffer.
/// </summary>
/// <remarks>
/// <para><b>Registers.</b> RBR/THR, IER (low four bits only), IIR/FCR (FIFO enable reports IIR bits 0xC0; RX
/// FIFO of 16 or 64 bytes, a one-byte holding register with the FIFO off), LCR with DLAB switching offsets 0/1 to
/// DLL/DLM, MCR (bits 0–4; loopback sends THR bytes to the receiver and loops DTR/RTS/OUT1/OUT2 to
/// DSR/CTS/RI/DCD with delta bits), LSR (DR, OE, THRE, TEMT; reading clears OE), MSR (reading clears the delta
/// bits), SCR. An RBR read with nothing received returns 0. Writes to LSR/MSR (factory test) are ignored. Accesses wider than one byte read all-ones and
/// write nothing; no access throws.</para>
/// <para><b>Interrupts</b>, in 16550 priority order: receiver line status (OE with IER.RLSI), received data
/// (FIFO not empty with IER.RDI; the trigger level is treated as 1 and no character-timeout ID is reported,
/// which the 8250 driver handles identically), THR empty, modem status. The THRE source is latched: it is set
/// when a byte has been transmitted and whenever IER.THRI goes from 0 to 1 (Linux's TXEN and THRE-reassert
/// start-up tests rely on this), and cleared by a THR write or by an IIR read that reports it.</para>
/// <para><b>Why a level line.</b> The UART's INTR pin is a level signal; on a PC it reaches the interrupt
/// controller only while MCR.OUT2 is set (Linux raises OUT2 when it opens the port and keeps it clear during the
/// start-up THRE probe), and not in loopback mode. The device drives <see cref="IInterruptLine.SetLevel"/> with
/// exactly that pin value, calling it only when the value changes. With KVM's in-kernel PIC and IOAPIC (pin 4
/// programmed edge-triggered, the ISA default from the MP table) a 0→1 change through KVM_IRQ_LINE is one
/// edge, i.e. one interrupt, just as on hardware; and if a guest programs the pin level-triggered, the line
/// stays asserted until the driver has drained every source, so no interrupt is lost either (a fire-and-forget
/// pulse would lose one there: the IOAPIC's remote-IRR swallows a pulse that arrives before the EOI). The 8250
/// interrupt handler loops until IIR reads "no interrupt", which deasserts the line, so the next source always
/// produces a fresh rising edge.</para>
/// <para><b>Threads.</b> Register accesses come from vCPU threads and input from a host thread; one lock guards
/// the state and the interrupt line is driven under it, so line changes reach KVM in the order they happened.
/// Output is appended after the lock is released, so a slow sink never blocks input injection.</para>
/// <para><b>Input backpressure.</b> Host input enters the RX FIFO while there is room and otherwise waits in a
/// bounded host-side buffer (<see cref="Uart16550Options.HostInputCapacity"/>), which the guest's RBR reads
/// drain into the FIFO. When that buffer is full <see cref="ConsoleUart.TryEnqueue(ReadOnlySpan{byte})"/> accepts
/// fewer bytes and <see cref="ConsoleUart.Enqueue"/> waits for <see cref="ConsoleUart.InputSpaceAvailable"/>; nothing
/// is dropped by the host.
/// Bytes the guest itself discards (an FCR receive-FIFO clear, as Linux does when it opens the port) are gone,
/// as on hardware. While loopback mode is on, host input stays in the host buffer.</para>
/// </remarks>
public sealed class Uart16550 : ConsoleUart, IBusDevice
{
    /// <summary>Number of consecutive ports to insert the device at (COM1: 0x3F8..0x3FF).</summary>
    public const int PortCount = UartRegisters.PortCount;

    /// <summary>Modem inputs of a connected terminal outside loopback: CTS, DSR and DCD asserted, no ring.</summary>
    private const byte ConnectedModemLines = MsrCts | MsrDsr | MsrDcd;

    private readonly IInterruptLine _interrupt;
    private readonly ByteRing _rxFifo;

    private byte _ier;
    private byte _lcr;
    private byte _mcr;
    private byte _scr;
    private byte _dll = 0x0C; // 9600 baud, as a BIOS would leave it
    private byte _dlm;
    private bool _fifoEnabled;
    private bool _overrun;
    private byte _msrDelta;
    private bool _thrEmptyPending;
    private bool _interruptAsserted;

    /// <param name="interrupt">COM1's line (GSI 4); driven with <see cref="IInterruptLine.SetLevel"/> only.</param>
    /// <param name="output">Where transmitted bytes go (stdout for a console). Not disposed by the device.</param>
    public Uart16550(IInterruptLine interrupt, Stream output, Uart16550Options? options = null)
        : base(output, options ??= new Uart16550Options())
    {
        ArgumentNullException.ThrowIfNull(interrupt);
        _interrupt = interrupt;
        _rxFifo = new ByteRing(options.ReceiveFifoSize);
    }

    /// <summary>Input bytes accepted but not yet read by the guest (RX FIFO plus host buffer).</summary>
    public int PendingInputCount
    {
        get
        {
            lock (StateLock)
            {
                return _rxFifo.Count + HostInput.Count;
            }
        }
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || offset >= PortCount)
        {
            data.Fill(0xFF);
            return;
        }
        lock (StateLock)
        {
            data[0] = ReadRegister((int)offset);
            UpdateInterruptLocked();
        }
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || offset >= PortCount)
        {
            return;
        }
        bool transmitted;
        lock (StateLock)
        {
            transmitted = WriteRegister((int)offset, data[0]);
            UpdateInterruptLocked();
        }
        if (transmitted)
        {
            Output.Append(data[0]);
        }
    }

    /// <summary>Queues one input byte without blocking; false when the host buffer is full.</summary>
    public bool TryEnqueue(byte value) => TryEnqueue([value]) == 1;

    private bool DlabSet => (_lcr & LcrDlab) != 0;

    private bool LoopbackMode => (_mcr & McrLoop) != 0;

    /// <summary>One byte of holding register without the FIFO, the configured depth with it.</summary>
    private int ReceiveLimit => _fifoEnabled ? _rxFifo.Capacity : 1;

    private byte ReadRegister(int offset)
    {
        switch (offset)
        {
            case Rbr when DlabSet:
                return _dll;
            case Rbr:
                return ReadReceiveBuffer();
            case Ier when DlabSet:
                return _dlm;
            case Ier:
                return _ier;
            case Iir:
                return ReadInterruptIdentification();
            case Lcr:
                return _lcr;
            case Mcr:
                return _mcr;
            case Lsr:
                return ReadLineStatus();
            case Msr:
                byte msr = (byte)(ModemLines() | _msrDelta);
                _msrDelta = 0;
                return msr;
            default: // Scr; the caller bounds offset to 0..7
                return _scr;
        }
    }

    /// <returns>True when <paramref name="value"/> left on the wire (THR write outside loopback).</returns>
    private bool WriteRegister(int offset, byte value)
    {
        switch (offset)
        {
            case Dll when DlabSet:
                _dll = value;
                return false;
            case Thr:
                return Transmit(value);
            case Dlm when DlabSet:
                _dlm = value;
                return false;
            case Ier:
                WriteInterruptEnable(value);
                return false;
            case Fcr:
                WriteFifoControl(value);
                return false;
            case Lcr:
                _lcr = value;
                return false;
            case Mcr:
                WriteModemControl(value);
                return false;
            case Scr:
                _scr = value;
                return false;
            default: // LSR and MSR are read-only
                return false;
        }
    }

    private byte ReadReceiveBuffer()
    {
        if (!_rxFifo.TryPop(out byte value))
        {
            return 0;
        }
        if (RefillReceiveFifoLocked() > 0)
        {
            UpdateInputSpaceLocked();
        }
        return value;
    }

    private byte ReadInterruptIdentification()
    {
        byte id = PendingInterruptId();
        if (id == IirThre)
        {
            // Reading IIR acknowledges THRE when it is the source reported (it is the lowest-but-one priority).
            _thrEmptyPending = false;
        }
        return (byte)(id | (_fifoEnabled ? IirFifoEnabled : 0));
    }

    private byte ReadLineStatus()
    {
        byte lsr = LsrThre | LsrTemt;
        if (!_rxFifo.IsEmpty)
        {
            lsr |= LsrDataReady;
        }
        if (_overrun)
        {
            lsr |= LsrOverrun;
            _overrun = false;
        }
        return lsr;
    }

    private bool Transmit(byte value)
    {
        // The THR write clears THRE; the byte leaves at once, so the transmitter is empty again and THRE re-arms.
        _thrEmptyPending = true;
        if (!LoopbackMode)
        {
            return true;
        }
        if (_rxFifo.Count >= ReceiveLimit)
        {
            // 16550: the byte in the receive shift register is lost, the FIFO keeps its contents.
            _overrun = true;
        }
        else
        {
            _rxFifo.TryPush(value);
        }
        return false;
    }

    private void WriteInterruptEnable(byte value)
    {
        byte next = (byte)(value & IerValidMask);
        if ((next & IerThri) != 0 && (_ier & IerThri) == 0)
        {
            // A rising IER.THRI with the transmitter empty (always, here) raises THRE again, even if an earlier
            // IIR read acknowledged it; Linux's start-up tests check exactly this.
            _thrEmptyPending = true;
        }
        _ier = next;
    }

    private void WriteFifoControl(byte value)
    {
        bool enable = (value & FcrEnableFifo) != 0;
        // Changing the FIFO enable resets both FIFOs on a 16550A, as does the explicit clear bit.
        if (enable != _fifoEnabled || (value & FcrClearReceive) != 0)
        {
            _rxFifo.Clear();
        }
        // The trigger level (bits 6–7) is not modelled: data raises the interrupt from the first byte.
        _fifoEnabled = enable;
        if (RefillReceiveFifoLocked() > 0)
        {
            UpdateInputSpaceLocked();
        }
    }

    private void WriteModemControl(byte value)
    {
        byte oldLines = ModemLines();
        _mcr = (byte)(value & McrValidMask);
        byte newLines = ModemLines();
        byte changed = (byte)(oldLines ^ newLines);
        if ((changed & MsrCts) != 0)
        {
            _msrDelta |= MsrDeltaCts;
        }
        if ((changed & MsrDsr) != 0)
        {
            _msrDelta |= MsrDeltaDsr;
        }
        if ((oldLines & MsrRi) != 0 && (newLines & MsrRi) == 0)
        {
            _msrDelta |= MsrTrailingEdgeRi;
        }
        if ((changed & MsrDcd) != 0)
        {
            _msrDelta |= MsrDeltaDcd;
        }
        if (!LoopbackMode && RefillReceiveFifoLocked() > 0)
        {
            UpdateInputSpaceLocked();
        }
    }

    /// <summary>MSR bits 4–7: the outputs looped back in loopback mode, a connected terminal otherwise.</summary>
    private byte ModemLines()
    {
        if (!LoopbackMode)
        {
            return ConnectedModemLines;
        }
        byte lines = 0;
        if ((_mcr & McrRts) != 0)
        {
            lines |= MsrCts;
        }
        if ((_mcr & McrDtr) != 0)
        {
            lines |= MsrDsr;
        }
        if ((_mcr & McrOut1) != 0)
        {
            lines |= MsrRi;
        }
        if ((_mcr & McrOut2) != 0)
        {
            lines |= MsrDcd;
        }
        return lines;
    }

    private byte PendingInterruptId()
    {
        if ((_ier & IerRlsi) != 0 && _overrun)
        {
            return IirLineStatus;
        }
        if ((_ier & IerRdi) != 0 && !_rxFifo.IsEmpty)
        {
            return IirRxData;
        }
        if ((_ier & IerThri) != 0 && _thrEmptyPending)
        {
            return IirThre;
        }
        if ((_ier & IerMsi) != 0 && (_msrDelta & MsrDeltaMask) != 0)
        {
            return IirModemStatus;
        }
        return IirNoInterrupt;
    }

    /// <summary>Moves waiting host input into the RX FIFO (not in loopback mode: the serial input is cut off).</summary>
    private protected override int RefillReceiveFifoLocked()
    {
        if (LoopbackMode)
        {
            return 0;
        }
        int moved = 0;
        int limit = ReceiveLimit;
        while (_rxFifo.Count < limit && HostInput.TryPop(out byte value))
        {
            _rxFifo.TryPush(value);
            moved++;
        }
        return moved;
    }

    private protected override void UpdateInterruptLocked()
    {
        bool asserted = PendingInterruptId() != IirNoInterrupt && (_mcr & McrOut2) != 0 && !LoopbackMode;
        if (asserted != _interruptAsserted)
        {
            _interruptAsserted = asserted;
            _interrupt.SetLevel(asserted);
        }
    }
}
