using System.Buffers.Binary;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Legacy.Tests.TestDoubles;

namespace Vmm.Devices.Legacy.Tests.Serial;

/// <summary>The PL011 as Linux's amba-pl011 driver and the AMBA bus see it: the PrimeCell ids it is matched by, the
/// flag register the console polls, the receive and transmit interrupts, the FIFO switch, and host input
/// backpressure.</summary>
public sealed class Pl011Tests : IDisposable
{
    private const ulong Dr = 0x000, Fr = 0x018, LcrH = 0x02C, Imsc = 0x038, Ris = 0x03C, Mis = 0x040, Icr = 0x044;
    private const uint RxIntr = 1 << 4, TxIntr = 1 << 5, FrRxfe = 1 << 4, FrTxfe = 1 << 7, FrRxff = 1 << 6, FrTxff = 1 << 5;

    private readonly RecordingInterruptLine _line = new();
    private readonly RecordingStream _output = new();
    private readonly Pl011 _uart;

    public Pl011Tests() => _uart = new Pl011(_line, _output, new Uart16550Options { HostInputCapacity = 8, OutputIdleFlushDelay = TimeSpan.Zero });

    public void Dispose() => _uart.Dispose();

    private uint Read32(ulong offset)
    {
        Span<byte> b = stackalloc byte[4];
        _uart.Read(offset, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private ushort Read16(ulong offset)
    {
        Span<byte> b = stackalloc byte[2];
        _uart.Read(offset, b);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    private void Write32(ulong offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        _uart.Write(offset, b);
    }

    private void Write16(ulong offset, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        _uart.Write(offset, b);
    }

    [Fact]
    public void The_primecell_ids_say_arm_pl011_revision_1()
    {
        uint periph = 0, cell = 0;
        for (int i = 0; i < 4; i++)
        {
            periph |= (Read32(0xFE0 + 4 * (ulong)i) & 0xFF) << (8 * i);
            cell |= (Read32(0xFF0 + 4 * (ulong)i) & 0xFF) << (8 * i);
        }
        // amba_device_add: part 0x011, designer 0x41 (ARM), revision 1; PrimeCell id 0xB105F00D.
        Assert.Equal(0x0014_1011u, periph);
        Assert.Equal(0xB105_F00Du, cell);
    }

    [Fact]
    public void Transmitted_bytes_reach_the_sink_and_the_transmitter_always_looks_empty()
    {
        foreach (char c in "hi\n")
        {
            Assert.Equal(0u, Read16(Fr) & FrTxff);
            Write16(Dr, c);
        }
        _uart.FlushOutput();
        Assert.Equal("hi\n"u8.ToArray(), _output.Bytes);
        Assert.NotEqual(0u, Read32(Fr) & FrTxfe);
    }

    [Fact]
    public void A_write_raises_the_transmit_interrupt_when_unmasked_and_icr_clears_it()
    {
        Write32(Dr, 'a');
        Assert.Equal(TxIntr, Read32(Ris) & TxIntr);
        Assert.Equal(0u, Read32(Mis));
        Assert.False(_line.Level); // masked

        Write32(Imsc, TxIntr);
        Assert.True(_line.Level);
        Assert.Equal(TxIntr, Read32(Mis));

        Write32(Icr, TxIntr);
        Assert.False(_line.Level);
        Write32(Dr, 'b');
        Assert.True(_line.Level);
        Assert.Equal(2, _line.RisingEdges);
    }

    [Fact]
    public void Received_bytes_raise_the_receive_interrupt_until_the_fifo_is_drained()
    {
        Write32(Imsc, RxIntr);
        Assert.NotEqual(0u, Read32(Fr) & FrRxfe);
        Assert.Equal(0u, Read32(Dr)); // nothing received reads 0
        Assert.False(_line.Level);

        Write32(LcrH, 0x70); // 8 bits, FIFO on
        Assert.Equal(3, _uart.TryEnqueue("abc"u8));
        Assert.True(_line.Level);
        Assert.Equal(0u, Read32(Fr) & FrRxfe);
        Assert.Equal((uint)'a', Read32(Dr) & 0xFF);
        Assert.Equal((uint)'b', Read32(Dr) & 0xFF);
        Assert.True(_line.Level);
        Assert.Equal((uint)'c', Read32(Dr) & 0xFF);
        Assert.False(_line.Level);
        Assert.NotEqual(0u, Read32(Fr) & FrRxfe);
    }

    [Fact]
    public void Icr_cannot_clear_a_receive_interrupt_while_data_waits()
    {
        Write32(Imsc, RxIntr);
        _uart.TryEnqueue("x"u8);
        Write32(Icr, 0x7FF);
        Assert.True(_line.Level);
        Assert.Equal(RxIntr, Read32(Mis));
    }

    [Fact]
    public void Without_the_fifo_one_byte_is_held_and_the_rest_waits_in_the_host_buffer()
    {
        Assert.Equal(5, _uart.TryEnqueue("12345"u8));
        Assert.NotEqual(0u, Read32(Fr) & FrRxff); // the one-byte holding register is full
        var got = new List<byte>();
        while ((Read32(Fr) & FrRxfe) == 0)
        {
            got.Add((byte)Read32(Dr));
        }
        Assert.Equal("12345"u8.ToArray(), got.ToArray());
    }

    [Fact]
    public void A_full_host_buffer_pushes_back_instead_of_dropping()
    {
        Write32(LcrH, 0x70);
        byte[] input = new byte[40];
        for (int i = 0; i < input.Length; i++)
        {
            input[i] = (byte)('A' + i % 26);
        }
        int accepted = _uart.TryEnqueue(input);
        Assert.Equal(16 + 8, accepted); // the FIFO plus the host buffer
        Assert.False(_uart.InputSpaceAvailable.WaitOne(0));

        bool enqueued = false;
        var writer = new Thread(() => enqueued = _uart.Enqueue(input.AsSpan(accepted)));
        writer.Start();
        var got = new List<byte>();
        while (got.Count < input.Length)
        {
            if ((Read32(Fr) & FrRxfe) == 0)
            {
                got.Add((byte)Read32(Dr));
            }
            else
            {
                Thread.Yield();
            }
        }
        Assert.True(writer.Join(TimeSpan.FromSeconds(10)));
        Assert.True(enqueued);
        Assert.Equal(input, got.ToArray());
    }

    [Theory]
    [InlineData(0x1000UL, 4)]   // beyond the window
    [InlineData(0xFFEUL, 4)]    // straddles its end
    [InlineData(0x000UL, 8)]    // no 64-bit registers
    public void Bad_accesses_read_all_ones_and_write_nothing(ulong offset, int width)
    {
        byte[] data = new byte[width];
        _uart.Read(offset, data);
        Assert.All(data, b => Assert.Equal(0xFF, b));
        _uart.Write(offset, new byte[width]);
        _uart.Write(0x001, [(byte)'x']); // unaligned: ignored
        _uart.FlushOutput();
        Assert.Empty(_output.Bytes);
    }
}
