using System.Text;
using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Legacy.Tests.TestDoubles;
using static Vmm.Devices.Legacy.Serial.UartRegisters;

namespace Vmm.Devices.Legacy.Tests.Serial;

/// <summary>Replays what drivers/tty/serial/8250/8250_port.c does to the UART and checks what it concludes.</summary>
public sealed class Uart16550LinuxDriverTests
{
    /// <summary>autoconfig() + autoconfig_16550a(): returns the port type Linux would pick.</summary>
    private static string Autoconfig(UartHarness h)
    {
        // IER test: 0 reads back 0, 0x0F reads back 0x0F.
        h.Out(Ier, 0);
        byte scratch2 = (byte)(h.In(Ier) & 0x0F);
        h.Out(Ier, 0x0F);
        byte scratch3 = (byte)(h.In(Ier) & 0x0F);
        h.Out(Ier, 0);
        if (scratch2 != 0 || scratch3 != 0x0F)
        {
            return "none (IER test)";
        }
        byte saveMcr = h.In(Mcr);
        byte saveLcr = h.In(Lcr);
        // Loopback test: MCR = LOOP | OUT2 | RTS must read MSR status DCD | CTS.
        h.Out(Mcr, McrLoop | 0x0A);
        byte status1 = (byte)(h.In(Msr) & 0xF0);
        h.Out(Mcr, saveMcr);
        if (status1 != 0x90)
        {
            return "none (loopback test)";
        }
        // EFR probe at LCR = 0xBF must read non-zero on a 16550A.
        h.Out(Lcr, 0xBF);
        h.Out(2, 0); // EFR write
        h.Out(Lcr, 0);
        h.Out(Fcr, FcrEnableFifo);
        byte iirFifo = (byte)(h.In(Iir) >> 6);
        if (iirFifo != 3)
        {
            return $"not 16550A (IIR>>6 = {iirFifo})";
        }
        // autoconfig_16550a: ST16C650V1 EFR probe with DLAB (0x80) and 16650 probe with 0xBF: EFR must be non-zero.
        h.Out(Lcr, 0x80);
        if (h.In(2) == 0)
        {
            return "ST16C650V1";
        }
        h.Out(Lcr, 0xBF);
        if (h.In(2) == 0)
        {
            return "16650";
        }
        // NatSemi probe: EXCR1 at LCR = 0xE0 must not follow MCR.LOOP.
        h.Out(Lcr, 0);
        byte mcr = h.In(Mcr);
        h.Out(Lcr, 0xE0);
        byte excr1 = h.In(2);
        if (((excr1 ^ mcr) & McrLoop) == 0)
        {
            h.Out(Lcr, 0);
            h.Out(Mcr, (byte)(mcr ^ McrLoop));
            h.Out(Lcr, 0xE0);
            excr1 = h.In(2);
            h.Out(Lcr, 0);
            h.Out(Mcr, mcr);
            if (((excr1 ^ mcr) & McrLoop) != 0)
            {
                return "NS16550A";
            }
        }
        // TI16750 probe: IIR bit 5 with the 64-byte FIFO bit and DLAB.
        h.Out(Lcr, 0);
        h.Out(Fcr, FcrEnableFifo | 0x20);
        byte s1 = (byte)(h.In(Iir) & 0xE0);
        h.Out(Fcr, 0);
        h.Out(Lcr, 0x80);
        h.Out(Fcr, FcrEnableFifo | 0x20);
        byte s2 = (byte)(h.In(Iir) & 0xE0);
        h.Out(Fcr, 0);
        h.Out(Lcr, 0);
        if (s1 == 0xC0 && s2 == 0xE0)
        {
            return "16750";
        }
        // XScale probe: IER bit 6 (UUE) must not stick.
        byte ier = h.In(Ier);
        h.Out(Ier, (byte)(ier | 0x40));
        bool uue = (h.In(Ier) & 0x40) != 0;
        h.Out(Ier, ier);
        h.Out(Lcr, saveLcr);
        return uue ? "XScale" : "16550A";
    }

    [Fact]
    public void Autoconfig_DetectsA16550A()
    {
        using var h = new UartHarness();
        Assert.Equal("16550A", Autoconfig(h));
        Assert.Empty(h.SinkBytes());  // probing transmitted nothing
        Assert.Empty(h.Line.Levels);  // and raised nothing (OUT2 clear)
    }

    [Fact]
    public void ConsoleSession_StartupThenInterruptDrivenTxAndRx()
    {
        using var h = new UartHarness();
        Autoconfig(h);

        // serial8250_do_startup: clear FIFOs, clear interrupt state, 8N1, raise DTR/RTS/OUT2.
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Fcr, FcrEnableFifo | FcrClearReceive | FcrClearTransmit);
        h.Out(Fcr, 0);
        h.In(Lsr);
        h.In(Rbr);
        h.In(Iir);
        h.In(Msr);
        h.Out(Lcr, 0x03);
        h.Out(Mcr, McrDtr | McrRts | McrOut2);
        h.Out(Fcr, FcrEnableFifo | 0x80); // set_termios: FIFO on, trigger 8
        h.Out(Ier, IerRdi | IerRlsi);
        Assert.Empty(h.Line.Levels);

        // uart_write → start_tx sets THRI; the interrupt handler sends up to 16 bytes per THRE.
        byte[] message = Encoding.ASCII.GetBytes("Welcome to the test guest\r\n");
        int sent = 0;
        h.Out(Ier, IerRdi | IerRlsi | IerThri);
        int interrupts = 0;
        while (h.Line.Level && interrupts < 100)
        {
            interrupts++;
            // serial8250_handle_irq
            byte iir;
            while (((iir = h.In(Iir)) & IirNoInterrupt) == 0)
            {
                byte lsr = h.In(Lsr);
                if ((lsr & LsrThre) != 0 && (h.In(Ier) & IerThri) != 0)
                {
                    for (int i = 0; i < 16 && sent < message.Length; i++)
                    {
                        h.Out(Thr, message[sent++]);
                    }
                    if (sent == message.Length)
                    {
                        h.Out(Ier, IerRdi | IerRlsi); // stop_tx
                    }
                }
            }
        }
        Assert.Equal(message, h.SinkBytes()); // flushed by the "\n" without an explicit flush
        Assert.False(h.Line.Level);

        // Keyboard input: one interrupt, the handler drains the FIFO.
        int edgesBefore = h.Line.RisingEdges;
        h.Uart.TryEnqueue("ls\r"u8);
        Assert.Equal(edgesBefore + 1, h.Line.RisingEdges);
        Assert.Equal(IirFifoEnabled | IirRxData, h.In(Iir));
        Assert.Equal("ls\r"u8.ToArray(), h.DrainReceiver());
        Assert.False(h.Line.Level);
    }

    [Fact]
    public void OnThePortBus_AtCom1()
    {
        var bus = new IoBus("pio");
        var line = new RecordingInterruptLine();
        var sink = new RecordingStream();
        using var uart = new Uart16550(line, sink);
        bus.Insert(uart, X86Layout.Com1Port, Uart16550.PortCount);

        foreach (byte b in "ok\n"u8)
        {
            Assert.True(bus.Write(X86Layout.Com1Port, [b]));
        }
        Assert.Equal("ok\n"u8.ToArray(), sink.Bytes);
        Span<byte> lsr = [0];
        Assert.True(bus.Read(X86Layout.Com1Port + Lsr, lsr));
        Assert.Equal(LsrThre | LsrTemt, lsr[0]);
        Assert.False(bus.Read(X86Layout.Com1Port + 7, new byte[2])); // runs past the range: the bus refuses
    }

    [Fact]
    public void HotPaths_DoNotAllocate()
    {
        // Stream.Null and a counting line: the recording doubles themselves would allocate as they grow.
        var irq = new CountingInterruptLine();
        using var uart = new Uart16550(irq, Stream.Null, new Uart16550Options { OutputIdleFlushDelay = TimeSpan.FromHours(1) });
        uart.Write(Fcr, [FcrEnableFifo]);
        uart.Write(Mcr, [McrOut2]);
        uart.Write(Ier, [IerRdi | IerThri]);
        byte[] line = Encoding.ASCII.GetBytes("a console line of typical length, ending in a newline\n");
        Span<byte> one = [0];
        Exercise(uart, line, one); // warm up (JIT, timer queue)

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            Exercise(uart, line, one);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.True(irq.Changes >= 2000); // the interrupt path was exercised too

        static void Exercise(Uart16550 uart, byte[] line, Span<byte> one)
        {
            foreach (byte b in line)
            {
                uart.Write(Thr, [b]);
                uart.Read(Lsr, one);
            }
            uart.Write(Thr, [(byte)'p']); // partial line: arms the idle flush timer
            uart.TryEnqueue("abc"u8);
            while (uart.PendingInputCount > 0)
            {
                uart.Read(Rbr, one);
            }
            uart.Read(Iir, one); // acknowledges THRE: the line drops, the next write raises it again
            uart.FlushOutput();
        }
    }

    private sealed class CountingInterruptLine : Vmm.Core.Platform.IInterruptLine
    {
        public int Changes;

        public int Gsi => 4;

        public void Trigger() { }

        public void SetLevel(bool asserted) => Changes++;
    }
}
