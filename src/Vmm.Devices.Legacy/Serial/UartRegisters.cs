namespace Vmm.Devices.Legacy.Serial;

/// <summary>
/// Register offsets and bits of the 16550A as Linux's 8250 driver names them (include/uapi/linux/serial_reg.h).
/// Offsets 0 and 1 are the divisor latch while LCR.DLAB is set.
/// </summary>
internal static class UartRegisters
{
    public const int Rbr = 0; // read: receive buffer
    public const int Thr = 0; // write: transmit holding register
    public const int Dll = 0; // DLAB=1: divisor latch low
    public const int Ier = 1;
    public const int Dlm = 1; // DLAB=1: divisor latch high
    public const int Iir = 2; // read
    public const int Fcr = 2; // write
    public const int Lcr = 3;
    public const int Mcr = 4;
    public const int Lsr = 5;
    public const int Msr = 6;
    public const int Scr = 7;

    /// <summary>Number of consecutive ports the UART decodes.</summary>
    public const int PortCount = 8;

    public const byte IerRdi = 0x01;   // received data available
    public const byte IerThri = 0x02;  // transmitter holding register empty
    public const byte IerRlsi = 0x04;  // receiver line status
    public const byte IerMsi = 0x08;   // modem status
    /// <summary>A 16550A implements only the low four IER bits; Linux probes bit 6 to tell XScale UARTs apart.</summary>
    public const byte IerValidMask = 0x0F;

    public const byte IirNoInterrupt = 0x01;
    public const byte IirModemStatus = 0x00;
    public const byte IirThre = 0x02;
    public const byte IirRxData = 0x04;
    public const byte IirLineStatus = 0x06;
    /// <summary>Both FIFO bits set: what Linux's autoconfig reads (IIR &gt;&gt; 6 == 3) to classify a 16550A.</summary>
    public const byte IirFifoEnabled = 0xC0;

    public const byte FcrEnableFifo = 0x01;
    public const byte FcrClearReceive = 0x02;
    public const byte FcrClearTransmit = 0x04;
    public const byte FcrTriggerMask = 0xC0;

    public const byte LcrDlab = 0x80;

    public const byte McrDtr = 0x01;
    public const byte McrRts = 0x02;
    public const byte McrOut1 = 0x04;
    public const byte McrOut2 = 0x08;
    public const byte McrLoop = 0x10;
    /// <summary>Bits 5–7 do not exist on a 16550A (AFE is a 16750 feature) and read as zero.</summary>
    public const byte McrValidMask = 0x1F;

    public const byte LsrDataReady = 0x01;
    public const byte LsrOverrun = 0x02;
    public const byte LsrThre = 0x20;
    public const byte LsrTemt = 0x40;

    public const byte MsrDeltaCts = 0x01;
    public const byte MsrDeltaDsr = 0x02;
    public const byte MsrTrailingEdgeRi = 0x04;
    public const byte MsrDeltaDcd = 0x08;
    public const byte MsrDeltaMask = 0x0F;
    public const byte MsrCts = 0x10;
    public const byte MsrDsr = 0x20;
    public const byte MsrRi = 0x40;
    public const byte MsrDcd = 0x80;
}
