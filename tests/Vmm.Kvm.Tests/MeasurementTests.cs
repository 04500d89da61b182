using System.Diagnostics;
using Vmm.Kvm.Vcpus;
using Xunit.Abstractions;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

/// <summary>Rough figures printed to the test output (and checked for completeness, not for speed).</summary>
public class MeasurementTests(ITestOutputHelper output)
{
    [KvmFact]
    public void PioExitRoundTrip()
    {
        const int Count = 20000;
        using var guest = new TestGuest();
        guest.LoadRealModeCode(a =>
        {
            var loop = a.CreateLabel();
            a.mov(ecx, Count);
            a.mov(dx, TestGuest.RecordPort);
            a.Label(ref loop);
            a.@out(dx, al);
            a.dec(ecx);
            a.jnz(loop);
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
        });
        var stopwatch = Stopwatch.StartNew();
        VmRunResult result = guest.Run(TestGuest.RealModeState(), timeout: TimeSpan.FromSeconds(60));
        stopwatch.Stop();

        Assert.Equal(VmStopKind.ExitRequested, result.Kind);
        Assert.Equal(Count, guest.Recorder.Snapshot().Length);
        output.WriteLine($"{Count} PIO exits in {stopwatch.Elapsed.TotalMilliseconds:F0} ms (incl. VM setup): " +
            $"{stopwatch.Elapsed.TotalMicroseconds / Count:F2} µs per exit");
    }

    [KvmFact]
    public void StopLatencyOfHaltedVcpus()
    {
        using var guest = new TestGuest();
        guest.LoadRealModeCode(a =>
        {
            a.cli();
            a.hlt();
        });
        var stopwatch = new Stopwatch();
        using var stopper = new Timer(_ =>
        {
            stopwatch.Start();
            guest.Vm.Control.RequestExit(0, "measure");
        }, null, 300, Timeout.Infinite);
        VmRunResult result = guest.Run(TestGuest.RealModeState(), cpuCount: 2);
        stopwatch.Stop();

        Assert.Equal("measure", result.Reason);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1), $"stop took {stopwatch.Elapsed}");
        output.WriteLine($"2 vCPUs (BSP halted, AP waiting for SIPI) stopped {stopwatch.Elapsed.TotalMilliseconds:F2} ms after the request");
    }
}
