using System.Diagnostics.Metrics;
using Vmm.Core.Bus;
using Vmm.Core.Metrics;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Vcpus;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

/// <summary><c>vmm.kvm.exits</c> read through a <see cref="MeterListener"/>: a tiny guest's exits counted by reason,
/// exactly, and no allocation per exit on the vCPU thread while the listener listens.</summary>
public class ExitMetricsTests
{
    private const ushort MarkPort = 0x610, CountPort = 0x620;

    [Fact]
    public void Exit_reasons_have_the_kernels_names_and_unknown_ones_are_other()
    {
        Assert.Equal("io", VcpuExitMetrics.ReasonName((uint)KvmExitReason.Io));
        Assert.Equal("mmio", VcpuExitMetrics.ReasonName((uint)KvmExitReason.Mmio));
        Assert.Equal("hlt", VcpuExitMetrics.ReasonName((uint)KvmExitReason.Hlt));
        Assert.Equal("shutdown", VcpuExitMetrics.ReasonName((uint)KvmExitReason.Shutdown));
        Assert.Equal("irq_window_open", VcpuExitMetrics.ReasonName((uint)KvmExitReason.IrqWindowOpen));
        Assert.Equal("system_event", VcpuExitMetrics.ReasonName((uint)KvmExitReason.SystemEvent));
        Assert.Equal("other", VcpuExitMetrics.ReasonName(11)); // a hole between named reasons
        Assert.Equal("other", VcpuExitMetrics.ReasonName(uint.MaxValue));
    }

    [KvmFact]
    public void Port_and_mmio_exits_are_counted_by_reason_and_allocate_nothing_on_the_vcpu_thread()
    {
        const int portWrites = 300, mmioWrites = 200;
        using var guest = new TestGuest();
        var marks = new MarkDevice();
        guest.Pio.Insert(marks, MarkPort, 1);
        guest.Pio.Insert(new SinkDevice(), CountPort, 1);
        guest.Mmio.Insert(new SinkDevice(), 0xA0000, 0x1000);
        guest.LoadRealModeCode(a =>
        {
            a.mov(ax, 0xA000);
            a.mov(ds, ax);
            // Warm-up: one exit of each kind before the first mark (JIT of both dispatch paths).
            a.mov(dx, CountPort);
            a.@out(dx, al);
            a.mov(__dword_ptr[0x10], eax);
            a.mov(dx, MarkPort);
            a.@out(dx, al); // start: from here on the listener counts this thread's exits
            a.mov(dx, CountPort);
            a.mov(cx, portWrites);
            var ports = a.CreateLabel();
            a.Label(ref ports);
            a.@out(dx, al);
            a.loop(ports);
            a.mov(cx, mmioWrites);
            var mmio = a.CreateLabel();
            a.Label(ref mmio);
            a.mov(__dword_ptr[0x10], eax);
            a.loop(mmio);
            a.mov(dx, MarkPort);
            a.@out(dx, al); // end: counted (an exit is counted before it is dispatched), then counting stops
            a.mov(dx, TestGuest.ExitPort);
            a.mov(al, 0);
            a.@out(dx, al);
        });
        using var listener = new ExitListener(marks);

        VmRunResult result = guest.Run(TestGuest.RealModeState());

        Assert.Equal(VmStopKind.ExitRequested, result.Kind);
        Assert.Equal(2, marks.Marks);
        Assert.Equal(portWrites + 1, listener.Io);
        Assert.Equal(mmioWrites, listener.Mmio);
        Assert.Equal(0, marks.AllocatedBetweenMarks);
    }

    /// <summary>The first write arms counting on the writing (vCPU) thread and takes the allocation baseline; the
    /// second disarms it and takes the difference.</summary>
    private sealed class MarkDevice : IBusDevice
    {
        private long _baseline;

        public volatile int VcpuThread;
        public volatile bool Armed;
        public int Marks;
        public long AllocatedBetweenMarks = -1;

        public void Read(ulong offset, Span<byte> data) => data.Clear();

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
            if (++Marks == 1)
            {
                VcpuThread = Environment.CurrentManagedThreadId;
                Armed = true;
                _baseline = GC.GetAllocatedBytesForCurrentThread();
            }
            else
            {
                AllocatedBetweenMarks = GC.GetAllocatedBytesForCurrentThread() - _baseline;
                Armed = false;
            }
        }
    }

    private sealed class SinkDevice : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Clear();

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
        }
    }

    /// <summary>Counts vmm.kvm.exits by reason on the marked vCPU thread while armed (other tests' VMs record on
    /// their own threads). Allocates nothing: it runs on the vCPU thread inside the allocation measurement.</summary>
    private sealed class ExitListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly MarkDevice _marks;
        private long _io, _mmio;

        public ExitListener(MarkDevice marks)
        {
            _marks = marks;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == VmmMeter.Name && instrument.Name == VcpuExitMetrics.ExitsName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>(OnExit);
            _listener.Start();
        }

        public long Io => Interlocked.Read(ref _io);

        public long Mmio => Interlocked.Read(ref _mmio);

        private void OnExit(Instrument instrument, long measurement, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
        {
            if (!_marks.Armed || Environment.CurrentManagedThreadId != _marks.VcpuThread)
            {
                return;
            }
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key != VcpuExitMetrics.ReasonTag)
                {
                    continue;
                }
                if (tag.Value is "io")
                {
                    Interlocked.Add(ref _io, measurement);
                }
                else if (tag.Value is "mmio")
                {
                    Interlocked.Add(ref _mmio, measurement);
                }
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
