using System.Text;
using Vmm.Devices.Legacy.Serial;
using static Vmm.Devices.Legacy.Serial.UartRegisters;

namespace Vmm.Devices.Legacy.Tests.Serial;

public sealed class Uart16550RegisterTests
{
    [Fact]
    public void ResetState_MatchesA16550AAfterPowerOn()
    {
        using var h = new UartHarness();
        Assert.Equal(0x00, h.In(Ier));
        Assert.Equal(IirNoInterrupt, h.In(Iir)); // FIFO off: no 0xC0 bits
        Assert.Equal(0x00, h.In(Lcr));
        Assert.Equal(0x00, h.In(Mcr));
        Assert.Equal(LsrThre | LsrTemt, h.In(Lsr));
        Assert.Equal(MsrCts | MsrDsr | MsrDcd, h.In(Msr));
        Assert.Empty(h.Line.Levels);
    }

    [Fact]
    public void Dlab_SwitchesOffsetsZeroAndOneToTheDivisorLatch()
    {
        using var h = new UartHarness();
        h.Out(Ier, IerRdi);
        h.Out(Lcr, LcrDlab | 0x03);
        h.Out(Dll, 0x01);
        h.Out(Dlm, 0x02);
        Assert.Equal(0x01, h.In(Dll));
        Assert.Equal(0x02, h.In(Dlm));
        Assert.Empty(h.SinkBytes()); // the DLL write did not transmit

        h.Out(Lcr, 0x03);
        Assert.Equal(IerRdi, h.In(Ier)); // the DLM write did not touch IER
        Assert.Equal(0x03, h.In(Lcr));

        h.Out(Lcr, LcrDlab);
        Assert.Equal(0x01, h.In(Dll)); // latch kept while DLAB was off
        Assert.Equal(0x02, h.In(Dlm));
    }

    [Fact]
    public void Ier_KeepsOnlyTheFour16550Bits_McrOnlyFive()
    {
        using var h = new UartHarness();
        h.Out(Ier, 0xFF);
        Assert.Equal(0x0F, h.In(Ier));
        h.Out(Mcr, 0xFF & ~McrLoop);
        Assert.Equal(0x0F, h.In(Mcr));
        h.Out(Mcr, 0xFF);
        Assert.Equal(0x1F, h.In(Mcr));
    }

    [Fact]
    public void Scratch_RoundTrips_AndLsrMsrWritesAreIgnored()
    {
        using var h = new UartHarness();
        h.Out(Scr, 0xA5);
        Assert.Equal(0xA5, h.In(Scr));
        h.Out(Scr, 0x5A);
        Assert.Equal(0x5A, h.In(Scr));
        h.Out(Lsr, 0x00);
        h.Out(Msr, 0x00);
        Assert.Equal(LsrThre | LsrTemt, h.In(Lsr));
        Assert.Equal(MsrCts | MsrDsr | MsrDcd, h.In(Msr));
    }

    [Fact]
    public void Transmit_IsByteExactForAllByteValues()
    {
        using var h = new UartHarness();
        byte[] expected = new byte[512];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = (byte)i;
            h.Out(Thr, (byte)i);
            Assert.Equal(LsrThre | LsrTemt, h.In(Lsr) & (LsrThre | LsrTemt)); // never busy
        }
        h.Uart.FlushOutput();
        Assert.Equal(expected, h.SinkBytes());
    }

    [Fact]
    public void Output_IsFlushedOnNewlineInOneWrite()
    {
        using var h = new UartHarness(new Uart16550Options { OutputIdleFlushDelay = TimeSpan.FromHours(1) });
        h.OutString("VMM-TEST-MARKER: ok");
        Assert.Empty(h.SinkBytes()); // batched, not one write per byte
        h.OutString("\r\n");
        Assert.Equal("VMM-TEST-MARKER: ok\r\n", Encoding.ASCII.GetString(h.SinkBytes()));
        Assert.Equal(1, h.Sink.WriteCalls);
    }

    [Fact]
    public void Output_WithoutNewline_IsFlushedWhenTheGuestStopsWriting()
    {
        using var h = new UartHarness(new Uart16550Options { OutputIdleFlushDelay = TimeSpan.FromMilliseconds(20) });
        h.OutString("login: ");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (h.SinkBytes().Length == 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(5);
        }
        Assert.Equal("login: ", Encoding.ASCII.GetString(h.SinkBytes()));
    }

    [Fact]
    public void Output_FullBufferIsFlushedWithoutNewline()
    {
        using var h = new UartHarness(new Uart16550Options { OutputBufferSize = 8, OutputIdleFlushDelay = TimeSpan.FromHours(1) });
        h.OutString("0123456789");
        Assert.Equal("01234567", Encoding.ASCII.GetString(h.SinkBytes()));
        h.Uart.Dispose(); // flushes the rest
        Assert.Equal("0123456789", Encoding.ASCII.GetString(h.SinkBytes()));
    }

    [Fact]
    public void Output_SinkFailure_IsCountedNotThrown()
    {
        using var h = new UartHarness();
        h.Sink.FailWith = new IOException("EPIPE");
        h.OutString("lost\n");
        Assert.Equal(5, h.Uart.LostOutputBytes);
        h.Sink.FailWith = null;
        h.OutString("kept\n");
        Assert.Equal("kept\n", Encoding.ASCII.GetString(h.SinkBytes()));
    }

    [Fact]
    public void Lsr_DataReadyFollowsTheReceiver()
    {
        using var h = new UartHarness();
        Assert.Equal(0, h.In(Lsr) & LsrDataReady);
        Assert.Equal(2, h.Uart.TryEnqueue("ab"u8));
        Assert.NotEqual(0, h.In(Lsr) & LsrDataReady);
        Assert.Equal((byte)'a', h.In(Rbr));
        Assert.NotEqual(0, h.In(Lsr) & LsrDataReady);
        Assert.Equal((byte)'b', h.In(Rbr));
        Assert.Equal(0, h.In(Lsr) & LsrDataReady);
        Assert.Equal(0, h.In(Rbr)); // empty receiver
    }

    [Fact]
    public void Fcr_EnablesFifoAndIirReportsIt()
    {
        using var h = new UartHarness();
        h.Out(Fcr, FcrEnableFifo);
        Assert.Equal(3, h.In(Iir) >> 6); // what Linux's autoconfig reads to classify a 16550A
        h.Out(Fcr, 0);
        Assert.Equal(0, h.In(Iir) >> 6);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(64)]
    public void LoopbackFifo_FillsToItsDepthThenOverruns(int depth)
    {
        using var h = new UartHarness(new Uart16550Options { ReceiveFifoSize = depth });
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Mcr, McrLoop);
        for (int i = 0; i < depth; i++)
        {
            h.Out(Thr, (byte)(i + 1));
        }
        Assert.Equal(0, h.In(Lsr) & LsrOverrun);
        h.Out(Thr, 0xEE); // one too many
        byte lsr = h.In(Lsr);
        Assert.NotEqual(0, lsr & LsrOverrun);
        Assert.Equal(0, h.In(Lsr) & LsrOverrun); // reading LSR cleared OE

        byte[] received = h.DrainReceiver();
        Assert.Equal(Enumerable.Range(1, depth).Select(i => (byte)i).ToArray(), received); // overrun byte lost
        Assert.Empty(h.SinkBytes()); // loopback never reaches the wire
    }

    [Fact]
    public void WithoutFifo_TheReceiverHoldsOneByte()
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrLoop);
        h.Out(Thr, 0x11);
        h.Out(Thr, 0x22);
        Assert.NotEqual(0, h.In(Lsr) & LsrOverrun);
        Assert.Equal(new byte[] { 0x11 }, h.DrainReceiver());
    }

    [Fact]
    public void FcrClearReceive_DropsFifoContents_HostInputStillArrives()
    {
        using var h = new UartHarness(new Uart16550Options { ReceiveFifoSize = 16, HostInputCapacity = 64 });
        h.Out(Fcr, FcrEnableFifo);
        byte[] input = Enumerable.Range(0, 20).Select(i => (byte)i).ToArray();
        Assert.Equal(20, h.Uart.TryEnqueue(input));
        h.Out(Fcr, FcrEnableFifo | FcrClearReceive);
        // The 16 bytes in the FIFO are gone; the 4 still held by the host flow in.
        Assert.Equal(input[16..], h.DrainReceiver());
    }

    [Fact]
    public void Loopback_MsrMirrorsModemOutputs_WithDeltas()
    {
        using var h = new UartHarness();
        // Linux autoconfig: MCR = LOOP | OUT2 | RTS must read MSR status bits as DCD | CTS.
        h.Out(Mcr, McrLoop | McrOut2 | McrRts);
        byte msr = h.In(Msr);
        Assert.Equal(MsrDcd | MsrCts, msr & 0xF0);
        // Entering loopback dropped DSR (DTR is 0): delta DSR is reported once.
        Assert.NotEqual(0, msr & MsrDeltaDsr);
        Assert.Equal(0, h.In(Msr) & MsrDeltaMask);

        h.Out(Mcr, McrLoop | McrOut1 | McrDtr);
        msr = h.In(Msr);
        Assert.Equal(MsrRi | MsrDsr, msr & 0xF0);
        Assert.Equal(MsrDeltaCts | MsrDeltaDsr | MsrDeltaDcd, msr & MsrDeltaMask);

        h.Out(Mcr, McrLoop | McrDtr); // RI falls: trailing-edge RI
        Assert.NotEqual(0, h.In(Msr) & MsrTrailingEdgeRi);
    }

    [Fact]
    public void Loopback_HoldsHostInputUntilItEnds()
    {
        using var h = new UartHarness();
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Mcr, McrLoop);
        Assert.Equal(3, h.Uart.TryEnqueue("abc"u8));
        Assert.Equal(0, h.In(Lsr) & LsrDataReady);
        h.Out(Thr, (byte)'L');
        Assert.Equal("L"u8.ToArray(), h.DrainReceiver());
        h.Out(Mcr, 0);
        Assert.Equal("abc"u8.ToArray(), h.DrainReceiver());
    }

    [Theory]
    [InlineData(8UL, 1)]
    [InlineData(0x1000UL, 1)]
    [InlineData(ulong.MaxValue, 1)]
    [InlineData(0UL, 2)]
    [InlineData(0UL, 4)]
    [InlineData(5UL, 8)]
    [InlineData(0UL, 0)]
    public void BadOffsetsAndWidths_ReadAllOnesAndWriteNothing(ulong offset, int width)
    {
        using var h = new UartHarness();
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerThri);
        h.In(Iir); // acknowledge THRE
        h.Line.Clear();

        byte[] buffer = new byte[width];
        h.Uart.Read(offset, buffer);
        Assert.All(buffer, b => Assert.Equal(0xFF, b));
        h.Uart.Write(offset, Enumerable.Repeat((byte)'Z', width).ToArray());
        h.Uart.FlushOutput();
        Assert.Empty(h.SinkBytes());
        Assert.Empty(h.Line.Levels);
        Assert.Equal(IerThri, h.In(Ier));
    }
}
