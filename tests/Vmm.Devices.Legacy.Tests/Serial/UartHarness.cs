using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Legacy.Tests.TestDoubles;

namespace Vmm.Devices.Legacy.Tests.Serial;

/// <summary>A UART with a recording interrupt line and a memory sink, driven like a guest driver would.</summary>
internal sealed class UartHarness : IDisposable
{
    public UartHarness(Uart16550Options? options = null)
    {
        Uart = new Uart16550(Line, Sink, options);
    }

    public RecordingInterruptLine Line { get; } = new();

    public RecordingStream Sink { get; } = new();

    public Uart16550 Uart { get; }

    public void Out(int offset, byte value) => Uart.Write((ulong)offset, [value]);

    public byte In(int offset)
    {
        Span<byte> data = [0];
        Uart.Read((ulong)offset, data);
        return data[0];
    }

    public void OutString(string text)
    {
        foreach (char c in text)
        {
            Out(UartRegisters.Thr, (byte)c);
        }
    }

    public byte[] SinkBytes() => Sink.Bytes;

    /// <summary>Reads RBR while LSR.DR is set, as serial8250_rx_chars does.</summary>
    public byte[] DrainReceiver(int max = 100_000)
    {
        var bytes = new List<byte>();
        while ((In(UartRegisters.Lsr) & UartRegisters.LsrDataReady) != 0 && bytes.Count < max)
        {
            bytes.Add(In(UartRegisters.Rbr));
        }
        return [.. bytes];
    }

    public void Dispose() => Uart.Dispose();
}
