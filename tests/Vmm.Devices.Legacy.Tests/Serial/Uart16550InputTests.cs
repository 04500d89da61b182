using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Legacy.Tests.TestDoubles;
using static Vmm.Devices.Legacy.Serial.UartRegisters;

namespace Vmm.Devices.Legacy.Tests.Serial;

public sealed class Uart16550InputTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public void TryEnqueue_FillsFifoThenHostBuffer_ThenRefuses()
    {
        using var h = new UartHarness(new Uart16550Options { ReceiveFifoSize = 16, HostInputCapacity = 8 });
        h.Out(Fcr, FcrEnableFifo);
        byte[] input = Enumerable.Range(0, 30).Select(i => (byte)i).ToArray();

        Assert.Equal(24, h.Uart.TryEnqueue(input)); // 16 in the FIFO, 8 waiting on the host side
        Assert.Equal(24, h.Uart.PendingInputCount);
        Assert.False(h.Uart.InputSpaceAvailable.WaitOne(0));
        Assert.False(h.Uart.TryEnqueue(99));

        Assert.Equal(0, h.In(Rbr));                  // the guest reads one byte ...
        Assert.True(h.Uart.InputSpaceAvailable.WaitOne(0)); // ... which frees one host slot
        Assert.True(h.Uart.TryEnqueue(input[24]));
        Assert.Equal(input[1..25], h.DrainReceiver()); // nothing dropped, order kept
    }

    [Fact]
    public void WithoutFifo_InputWaitsOnTheHostSideByteByByte()
    {
        using var h = new UartHarness(new Uart16550Options { HostInputCapacity = 16 });
        Assert.Equal(5, h.Uart.TryEnqueue("hello"u8));
        Assert.Equal(5, h.Uart.PendingInputCount);
        Assert.Equal("hello"u8.ToArray(), h.DrainReceiver());
    }

    [Fact]
    public void Enqueue_BlocksWhileFull_AndCompletesAsTheGuestReads()
    {
        using var h = new UartHarness(new Uart16550Options { ReceiveFifoSize = 16, HostInputCapacity = 4 });
        h.Out(Fcr, FcrEnableFifo);
        byte[] input = Enumerable.Range(0, 100).Select(i => (byte)(i * 7)).ToArray();

        var writer = new BackgroundCall<bool>(() => h.Uart.Enqueue(input));
        var received = new List<byte>();
        var deadline = DateTime.UtcNow + Patience;
        while (received.Count < input.Length && DateTime.UtcNow < deadline)
        {
            byte[] chunk = h.DrainReceiver();
            received.AddRange(chunk);
            if (chunk.Length == 0)
            {
                Thread.Sleep(1);
            }
        }
        Assert.True(writer.Join(Patience));
        Assert.True(writer.Result);
        Assert.Equal(input, received);
    }

    [Fact]
    public void Enqueue_ReturnsFalseWhenCancelled()
    {
        using var h = new UartHarness(new Uart16550Options { HostInputCapacity = 1 });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        Assert.False(h.Uart.Enqueue("abcdef"u8, cts.Token)); // holding register 1 + host 1: never all accepted
        Assert.Equal(2, h.Uart.PendingInputCount);
    }

    [Fact]
    public void Enqueue_ReturnsFalseWhenDisposedWhileWaiting()
    {
        var h = new UartHarness(new Uart16550Options { HostInputCapacity = 1 });
        var writer = new BackgroundCall<bool>(() => h.Uart.Enqueue(new byte[10]));
        Thread.Sleep(50);
        h.Dispose();
        Assert.True(writer.Join(Patience));
        Assert.False(writer.Result);
        Assert.Equal(0, h.Uart.TryEnqueue("late"u8));
    }

    [Fact]
    public void ConcurrentInputAndGuestReads_DeliverEveryByteInOrder()
    {
        using var h = new UartHarness(new Uart16550Options { ReceiveFifoSize = 64, HostInputCapacity = 256 });
        h.Out(Fcr, FcrEnableFifo);
        h.Out(Mcr, McrOut2);
        h.Out(Ier, IerRdi);
        const int total = 200_000;
        var writer = new BackgroundCall<bool>(() =>
        {
            Span<byte> chunk = stackalloc byte[37];
            for (int sent = 0; sent < total; sent += chunk.Length)
            {
                int n = Math.Min(chunk.Length, total - sent);
                for (int i = 0; i < n; i++)
                {
                    chunk[i] = (byte)((sent + i) % 251);
                }
                if (!h.Uart.Enqueue(chunk[..n]))
                {
                    return false;
                }
            }
            return true;
        });

        int received = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (received < total && DateTime.UtcNow < deadline)
        {
            // The guest's interrupt handler: runs while the line is up, reads while LSR.DR.
            if (!h.Line.Level)
            {
                Thread.Yield();
                continue;
            }
            Assert.Equal(IirRxData, h.In(Iir) & 0x0F);
            foreach (byte b in h.DrainReceiver())
            {
                Assert.Equal((byte)(received % 251), b);
                received++;
            }
        }
        Assert.True(writer.Join(Patience));
        Assert.True(writer.Result);
        Assert.Equal(total, received);
        Assert.False(h.Line.Level);
    }
}
