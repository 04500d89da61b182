using System.Buffers.Binary;
using Vmm.Core.Bus;
using Vmm.Core.Platform;

namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// An ARM PrimeCell PL011 UART (the arm64 console, <c>ttyAMA0</c>, 4 KiB of MMIO and one level-triggered SPI),
/// modelled the way Linux's amba-pl011 driver and QEMU's <c>pl011</c> see it. Transmission is instantaneous: FR
/// always shows the transmit FIFO empty and idle, and every DR write raises the transmit interrupt. Guest output goes
/// to a <see cref="Stream"/> and host input arrives as <see cref="ConsoleUart"/> has it for both UARTs, so the console
/// behaves alike on both architectures.
/// </summary>
/// <remarks>
/// <para><b>Registers</b> (32-bit, accessed with 8-, 16- or 32-bit loads and stores at their offset): DR, RSR/ECR,
/// FR, ILPR, IBRD, FBRD, LCR_H (FEN selects a 16-byte receive FIFO or a one-byte holding register), CR, IFLS, IMSC,
/// RIS, MIS, ICR, DMACR, and the PrimeCell id registers at 0xFE0–0xFFC that the AMBA bus matches the driver by
/// (part 0x011, designer ARM, revision 1). Unknown offsets read 0 and ignore writes; no access throws.</para>
/// <para><b>Interrupts.</b> The receive interrupt (RXIS) is raised while received data waits (a trigger level of
/// one byte, as QEMU does) and the transmit interrupt (TXIS) by each DR write; ICR clears either, and a receive
/// source that still has data is raised again. The SPI is at the level of (RIS &amp; IMSC) != 0, changed only when
/// that value changes.</para>
/// <para><b>Threads.</b> Register accesses come from vCPU threads and input from a host thread; one lock guards the
/// state and drives the line, and output is appended after it is released.</para>
/// </remarks>
public sealed class Pl011 : ConsoleUart, IBusDevice
{
    /// <summary>The MMIO window the device answers in.</summary>
    public const int MmioSize = 0x1000;

    private const int Dr = 0x000, Rsr = 0x004, Fr = 0x018, Ilpr = 0x020, Ibrd = 0x024, Fbrd = 0x028, LcrH = 0x02C,
        Cr = 0x030, Ifls = 0x034, Imsc = 0x038, Ris = 0x03C, Mis = 0x040, Icr = 0x044, Dmacr = 0x048, IdBase = 0xFE0;
    private const uint FrRxfe = 1 << 4, FrTxfe = 1 << 7, FrRxff = 1 << 6, FrCts = 1 << 0, FrDsr = 1 << 1, FrDcd = 1 << 2;
    private const uint IntRx = 1 << 4, IntTx = 1 << 5, IntMask = 0x7FF;
    private const uint LcrFifoEnable = 1 << 4;
    private const int FifoDepth = 16;

    /// <summary>PeriphID0–3 and PCellID0–3: an ARM (0x41) PL011 (part 0x011), revision 1, PrimeCell 0xB105F00D.</summary>
    private static ReadOnlySpan<byte> Ids => [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

    private readonly IInterruptLine _interrupt;
    private readonly ByteRing _rxFifo = new(FifoDepth);

    private uint _lcrH, _cr = 0x300, _ifls = 0x12, _imsc, _ris, _ibrd, _fbrd, _ilpr, _dmacr;
    private bool _interruptAsserted;

    /// <param name="interrupt">The UART's SPI; driven with <see cref="IInterruptLine.SetLevel"/> only.</param>
    /// <param name="output">Where transmitted bytes go (stdout for a console). Not disposed by the device.</param>
    /// <param name="options">Buffer sizes and the output flush delay; the receive FIFO size is fixed at 16.</param>
    public Pl011(IInterruptLine interrupt, Stream output, Uart16550Options? options = null)
        : base(output, options ?? new Uart16550Options())
    {
        ArgumentNullException.ThrowIfNull(interrupt);
        _interrupt = interrupt;
    }

    private int ReceiveCapacity => (_lcrH & LcrFifoEnable) != 0 ? FifoDepth : 1;

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length is not (1 or 2 or 4) || offset > MmioSize - (ulong)data.Length)
        {
            data.Fill(0xFF);
            return;
        }
        uint value;
        lock (StateLock)
        {
            value = ReadRegister((int)offset & ~3) >> (8 * ((int)offset & 3));
            UpdateInterruptLocked();
        }
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        bytes[..data.Length].CopyTo(data);
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length is not (1 or 2 or 4) || offset > MmioSize - (ulong)data.Length || (offset & 3) != 0)
        {
            return;
        }
        uint value = data.Length switch
        {
            1 => data[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            _ => BinaryPrimitives.ReadUInt32LittleEndian(data),
        };
        bool transmit = false;
        lock (StateLock)
        {
            switch ((int)offset)
            {
                case Dr:
                    transmit = true;
                    _ris |= IntTx;
                    break;
                case Rsr:
                    break; // clears the (never set) receive errors
                case Ilpr: _ilpr = value & 0xFF; break;
                case Ibrd: _ibrd = value & 0xFFFF; break;
                case Fbrd: _fbrd = value & 0x3F; break;
                case LcrH:
                    if (((_lcrH ^ value) & LcrFifoEnable) != 0)
                    {
                        _rxFifo.Clear(); // switching the FIFO on or off flushes it, as on the PL011
                    }
                    _lcrH = value & 0xFF;
                    RefillReceiveFifoLocked();
                    break;
                case Cr: _cr = value & 0xFFFF; break;
                case Ifls: _ifls = value & 0x3F; break;
                case Imsc: _imsc = value & IntMask; break;
                case Icr:
                    _ris &= ~value;
                    RaiseReceiveLocked();
                    break;
                case Dmacr: _dmacr = value & 0x7; break;
            }
            UpdateInputSpaceLocked();
            UpdateInterruptLocked();
        }
        if (transmit)
        {
            Output.Append((byte)value);
        }
    }

    private uint ReadRegister(int offset)
    {
        switch (offset)
        {
            case Dr:
                if (!_rxFifo.TryPop(out byte b))
                {
                    return 0;
                }
                RefillReceiveFifoLocked();
                if (_rxFifo.IsEmpty)
                {
                    _ris &= ~IntRx;
                }
                UpdateInputSpaceLocked();
                return b;
            case Rsr: return 0;
            case Fr:
                return FrTxfe | FrCts | FrDsr | FrDcd | (_rxFifo.IsEmpty ? FrRxfe : 0) | (_rxFifo.Count >= ReceiveCapacity ? FrRxff : 0);
            case Ilpr: return _ilpr;
            case Ibrd: return _ibrd;
            case Fbrd: return _fbrd;
            case LcrH: return _lcrH;
            case Cr: return _cr;
            case Ifls: return _ifls;
            case Imsc: return _imsc;
            case Ris: return _ris;
            case Mis: return _ris & _imsc;
            case Dmacr: return _dmacr;
            case >= IdBase and < MmioSize: return Ids[(offset - IdBase) / 4];
            default: return 0;
        }
    }

    private protected override int RefillReceiveFifoLocked()
    {
        int moved = 0;
        while (_rxFifo.Count < ReceiveCapacity && HostInput.TryPop(out byte b))
        {
            _rxFifo.TryPush(b);
            moved++;
        }
        RaiseReceiveLocked();
        return moved;
    }

    private void RaiseReceiveLocked()
    {
        if (!_rxFifo.IsEmpty)
        {
            _ris |= IntRx;
        }
    }

    private protected override void UpdateInterruptLocked()
    {
        bool level = (_ris & _imsc) != 0;
        if (level != _interruptAsserted)
        {
            _interruptAsserted = level;
            _interrupt.SetLevel(level);
        }
    }
}
