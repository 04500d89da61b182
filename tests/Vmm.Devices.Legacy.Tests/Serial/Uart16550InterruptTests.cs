using Vmm.Devices.Legacy.Serial;
using static Vmm.Devices.Legacy.Serial.UartRegisters;

namespace Vmm.Devices.Legacy.Tests.Serial;

public sealed class Uart16550InterruptTests
{
    [Fact]
    public void EnablingThri_RaisesThre_AndIirReadAcknowledgesIt()
    {
        using var h = new UartHarness();
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Mcr, McrOut2);
        Assert.Empty(h.Line.Levels);

        h.Out(Ier, IerThri);
        Assert.Equal([true], h.Line.Levels);
        Assert.Equal(IirFifoEnabled | IirThre, h.In(Iir));
        Assert.Equal([true, false], h.Line.Levels);
        Assert.Equal(IirFifoEnabled | IirNoInterrupt, h.In(Iir));
    }

    [Fact]
    public void EachTransmit_RearmsThre()
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerThri);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(IirThre, h.In(Iir)); // acknowledged: line drops
            Assert.False(h.Line.Level);
            h.Out(Thr, (byte)'x');            // transmitted at once: THRE again
            Assert.True(h.Line.Level);
        }
        Assert.Equal(4, h.Line.RisingEdges);
    }

    [Fact]
    public void ThrWritesWhileThrePending_DoNotProduceExtraEdges()
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerThri);
        h.OutString("sixteen bytes...");
        Assert.Equal([true], h.Line.Levels); // one interrupt for the burst, as with a 16-byte TX FIFO load
    }

    [Fact]
    public void LinuxStartupTests_TxenAndThreReassert_Pass()
    {
        using var h = new UartHarness();
        // serial8250_do_startup, UART_BUG_THRE test: THRI on, read IIR, THRI off and on, read IIR again.
        h.Out(Ier, IerThri);
        byte iir1 = h.In(Iir);
        h.Out(Ier, 0);
        h.Out(Ier, IerThri);
        byte iir2 = h.In(Iir);
        h.Out(Ier, 0);
        Assert.Equal(0, iir1 & IirNoInterrupt);
        Assert.Equal(0, iir2 & IirNoInterrupt); // reasserted: no UART_BUG_THRE

        // UART_BUG_TXEN test: enabling THRI must show in IIR at once while LSR.TEMT is set.
        h.Out(Ier, IerThri);
        byte lsr = h.In(Lsr);
        byte iir = h.In(Iir);
        h.Out(Ier, 0);
        Assert.NotEqual(0, lsr & LsrTemt);
        Assert.Equal(0, iir & IirNoInterrupt);
        Assert.Empty(h.Line.Levels); // OUT2 was clear throughout: nothing reached the interrupt controller
    }

    [Fact]
    public void Out2_GatesTheInterruptPin()
    {
        using var h = new UartHarness();
        h.Out(Ier, IerThri);
        Assert.Empty(h.Line.Levels);
        h.Out(Mcr, McrOut2 | McrDtr | McrRts);
        Assert.Equal([true], h.Line.Levels);
        h.Out(Mcr, McrDtr | McrRts);
        Assert.Equal([true, false], h.Line.Levels);
    }

    [Fact]
    public void ReceivedData_RaisesUntilTheFifoIsDrained()
    {
        using var h = new UartHarness();
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerRdi);
        Assert.Empty(h.Line.Levels);

        h.Uart.TryEnqueue("hi"u8);
        Assert.Equal([true], h.Line.Levels);
        Assert.Equal(IirFifoEnabled | IirRxData, h.In(Iir));
        Assert.Equal((byte)'h', h.In(Rbr));
        Assert.True(h.Line.Level);                 // still data
        Assert.Equal((byte)'i', h.In(Rbr));
        Assert.Equal([true, false], h.Line.Levels); // drained: pin drops, next byte is a new edge

        h.Uart.TryEnqueue("!"u8);
        Assert.Equal(2, h.Line.RisingEdges);
    }

    [Fact]
    public void Iir_ReportsSourcesInPriorityOrder()
    {
        using var h = new UartHarness();
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Ier, IerRdi | IerThri | IerRlsi | IerMsi);
        // Loopback to create an overrun and modem-status deltas.
        h.Out(Mcr, McrLoop | McrRts);
        for (int i = 0; i < 17; i++)
        {
            h.Out(Thr, (byte)i);
        }

        Assert.Equal(IirFifoEnabled | IirLineStatus, h.In(Iir));
        Assert.Equal(IirFifoEnabled | IirLineStatus, h.In(Iir)); // not cleared by reading IIR
        Assert.NotEqual(0, h.In(Lsr) & LsrOverrun);                // cleared by reading LSR

        Assert.Equal(IirFifoEnabled | IirRxData, h.In(Iir));
        Assert.Equal(16, h.DrainReceiver().Length);

        Assert.Equal(IirFifoEnabled | IirThre, h.In(Iir));        // cleared by this read
        Assert.Equal(IirFifoEnabled | IirModemStatus, h.In(Iir));
        Assert.NotEqual(0, h.In(Msr) & MsrDeltaMask);              // cleared by reading MSR
        Assert.Equal(IirFifoEnabled | IirNoInterrupt, h.In(Iir));
    }

    [Fact]
    public void Loopback_GatesThePin_ButIirStillReports()
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrLoop | McrOut2);
        h.Out(Ier, IerRdi);
        h.Out(Thr, 0x42);
        Assert.Equal(IirRxData, h.In(Iir));
        Assert.Empty(h.Line.Levels);
    }

    [Fact]
    public void DisablingAnEnabledSource_DropsThePin()
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerRdi);
        h.Uart.TryEnqueue("x"u8);
        Assert.True(h.Line.Level);
        h.Out(Ier, 0);
        Assert.False(h.Line.Level);
        h.Out(Ier, IerRdi);
        Assert.True(h.Line.Level);
        Assert.Equal(0, h.Line.Triggers); // level-driven only
    }
}
