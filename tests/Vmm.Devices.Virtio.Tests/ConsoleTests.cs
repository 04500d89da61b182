using System.Text;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.Virtio.Console;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.Virtio.Tests;

public sealed class ConsoleTests
{
    /// <summary>A stream the test can read while the device thread writes.</summary>
    private sealed class SyncStream : MemoryStream
    {
        public string Text
        {
            get
            {
                lock (this)
                {
                    return Encoding.ASCII.GetString(ToArray());
                }
            }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            lock (this)
            {
                base.Write(buffer);
            }
        }
    }

    [Fact]
    public void GuestOutput_GoesToTheStream_InOrder()
    {
        var output = new SyncStream();
        using var h = new VirtioDeviceHarness(new VirtioConsole(output));
        VirtQueueDriver tx = h.Drivers[VirtioConsole.TransmitQueue];
        tx.Submit("Linux version "u8, 0);
        tx.Submit("6.12\n"u8, 0);
        tx.Kick();
        h.WaitUsed(VirtioConsole.TransmitQueue);
        h.WaitUsed(VirtioConsole.TransmitQueue);
        Assert.Equal("Linux version 6.12\n", output.Text);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HostInput_ReachesGuestReceiveBuffers_WhicheverComesFirst(bool eventIdx)
    {
        var console = new VirtioConsole(new SyncStream());
        using var h = new VirtioDeviceHarness(console, eventIdx);
        VirtQueueDriver rx = h.Drivers[VirtioConsole.ReceiveQueue];

        // Input first, buffer later.
        Assert.Equal(3, console.EnqueueInput("ls\n"u8));
        rx.Submit(default, 2);
        rx.Kick();
        DriverCompletion first = h.WaitUsed(VirtioConsole.ReceiveQueue);
        Assert.Equal("ls", Encoding.ASCII.GetString(rx.GetResponse(first)));
        rx.Submit(default, 16);
        rx.Submit(default, 16);
        rx.Kick();
        DriverCompletion second = h.WaitUsed(VirtioConsole.ReceiveQueue);
        Assert.Equal("\n", Encoding.ASCII.GetString(rx.GetResponse(second)));

        // Buffer already waiting, input later.
        console.EnqueueInput("pwd"u8);
        DriverCompletion third = h.WaitUsed(VirtioConsole.ReceiveQueue);
        Assert.Equal("pwd", Encoding.ASCII.GetString(rx.GetResponse(third)));
        Assert.Equal(0, console.PendingInput);

        // More buffers without further input: nothing returned; then input with the buffers posted silently.
        for (int i = 0; i < 3; i++)
        {
            rx.Submit(default, 16);
            rx.Kick();
        }
        console.EnqueueInput("x"u8);
        Assert.Equal("x", Encoding.ASCII.GetString(rx.GetResponse(h.WaitUsed(VirtioConsole.ReceiveQueue))));
    }

    [Fact]
    public void InputBeyondCapacity_IsDroppedAndCounted()
    {
        var console = new VirtioConsole(new SyncStream());
        Assert.Equal(VirtioConsole.InputCapacity, console.EnqueueInput(new byte[VirtioConsole.InputCapacity + 10]));
        Assert.Equal(10, console.InputDropped);
        console.Dispose();
    }

    [Fact]
    public void InputWrapsAroundTheRingBuffer()
    {
        var console = new VirtioConsole(new SyncStream());
        using var h = new VirtioDeviceHarness(console);
        VirtQueueDriver rx = h.Drivers[VirtioConsole.ReceiveQueue];
        var expected = new StringBuilder();
        var received = new StringBuilder();
        var chunk = new byte[40_000];
        for (int round = 0; round < 4; round++)
        {
            Array.Fill(chunk, (byte)('a' + round));
            expected.Append((char)('a' + round), chunk.Length);
            Assert.Equal(chunk.Length, console.EnqueueInput(chunk));
            int got = 0;
            while (got < chunk.Length)
            {
                rx.Submit(default, 8192);
                rx.Kick();
                DriverCompletion c = h.WaitUsed(VirtioConsole.ReceiveQueue);
                received.Append(Encoding.ASCII.GetString(rx.GetResponse(c)));
                got += (int)c.WrittenLength;
                rx.Release(c);
            }
        }
        Assert.Equal(expected.ToString(), received.ToString());
    }

    [Fact]
    public void MalformedTransmitRing_ReportsNeedsReset()
    {
        using var h = new VirtioDeviceHarness(new VirtioConsole(new SyncStream()));
        VirtQueueDriver tx = h.Drivers[VirtioConsole.TransmitQueue];
        tx.WriteDescriptor(0, new VirtqDescriptor(0xFFFF_0000, 16, 0, 0));
        tx.PublishHead(0);
        tx.Kick();
        Assert.True(h.WaitUntil(() => h.NeedsResetReasons.Count > 0));
        Assert.Contains("BufferOutsideMemory", h.NeedsResetReasons[0]);
    }
}
