using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Core.Platform;
using Vmm.Kvm.Vcpus;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

[CollectionDefinition(nameof(ProcessWideTests), DisableParallelization = true)]
public sealed class ProcessWideTests;

/// <summary>Tests that look at process-wide state (open fds, signals), so they run alone.</summary>
[Collection(nameof(ProcessWideTests))]
public partial class LifecycleTests
{
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private static int OpenFdCount() => Directory.GetFiles("/proc/self/fd").Length;

    [KvmFact]
    public void ShutdownClosesEveryFd()
    {
        void RunOnce()
        {
            using var guest = new TestGuest();
            IMsiVector vector = guest.Vm.Msi.AllocateVector();
            vector.Update(0xFEE0_0000, 0x30);
            using var notify = new EventFd();
            IDisposable registration = guest.Vm.IoEvents.Register(IoEventSpace.Pio, 0x640, 1, notify);
            guest.LoadRealModeCode(a =>
            {
                a.mov(dx, TestGuest.ExitPort);
                a.@out(dx, al);
            });
            guest.Run(TestGuest.RealModeState(), cpuCount: 2);
            _ = registration; // left for the VM's Dispose to release
        }

        RunOnce(); // warm up: runtime-internal fds (signal pipes, timers) opened on first use
        int before = OpenFdCount();
        RunOnce();
        RunOnce();
        Assert.Equal(before, OpenFdCount());
    }

    [KvmFact]
    public void SigtermStopsTheVmWhenAskedTo()
    {
        using var guest = new TestGuest();
        guest.LoadRealModeCode(a =>
        {
            a.cli();
            a.hlt();
        });
        using var sender = new Timer(_ => Kill(Environment.ProcessId, 15), null, 300, Timeout.Infinite);

        VmRunResult result = guest.Vm.Run(TestGuest.RealModeState(), 1, guest.Pio, guest.Mmio,
            new VmRunOptions { StopOnSigterm = true });

        Assert.Equal(VmStopKind.ExitRequested, result.Kind);
        Assert.Equal(143, result.ExitCode);
        Assert.Equal("SIGTERM", result.Reason);
    }
}
