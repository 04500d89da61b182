using Vmm.Kvm.Vcpus;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

/// <summary>
/// int3 and fwait at CPL0 in 64-bit mode. On an ordinary host they execute natively; on the PVM host KVM fails to
/// emulate them and the host profile repairs them (RIP+1, inject #BP for int3). Either way the guest must observe
/// exactly what a CPU does: the #BP handler runs once and execution resumes after the int3. On PVM the test also
/// checks that the repair path was taken.
/// </summary>
public class RepairTests
{
    [KvmFact]
    public void Int3RunsTheBreakpointHandlerAndFwaitIsANoOp()
    {
        var log = new List<string>();
        using var guest = new TestGuest(line => { lock (log) { log.Add(line); } });
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress);
        LongModeGuest.SetGate(guest.Memory, 3, 0x1800);
        guest.LoadCode(64, 0x1800, a =>
        {
            a.mov(dx, TestGuest.RecordPort);
            a.mov(al, 0x33);
            a.@out(dx, al);
            a.iretq();
        });
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            a.mov(dx, TestGuest.RecordPort);
            a.mov(al, 0x11);
            a.@out(dx, al);
            a.wait(); // fwait (9B)
            a.int3();
            a.mov(dx, TestGuest.RecordPort);
            a.mov(al, 0x44);
            a.@out(dx, al);
            a.mov(dx, TestGuest.ExitPort);
            a.mov(al, 0);
            a.@out(dx, al);
        });

        VmRunResult result = guest.Run(state);

        Assert.True(result.Kind == VmStopKind.ExitRequested, result.ToString());
        Assert.Equal([0x11UL, 0x33UL, 0x44UL], guest.Recorder.Snapshot().Select(x => x.Value).ToArray());
        if (guest.Kvm.Profile.IsPvm)
        {
            Assert.Contains(log, l => l.Contains("SkipAndInjectBreakpoint"));
            Assert.Contains(log, l => l.Contains("SkipInstruction"));
        }
    }

    [KvmFact]
    public void UnrepairableEmulationFailureOrFaultStopsWithDiagnostics64Bit()
    {
        using var guest = new TestGuest();
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress);
        // No IDT gates: any exception escalates to a triple fault.
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            a.mov(rax, 0x1122334455667788);
            a.nop();
            a.ud2();
        });

        VmRunResult result = guest.Run(state);

        Assert.Equal(VmStopKind.Fatal, result.Kind);
        Assert.NotNull(result.Diagnostics);
        string text = result.Diagnostics!.ToString();
        if (result.Reason.Contains("triple fault") && !guest.Kvm.KeepsRegistersAfterShutdown)
        {
            // A hardware host raises #UD itself and, with no IDT, shuts down; on AMD the state is then gone.
            Assert.Contains("registers unavailable", text);
            return;
        }
        Assert.Equal(64, result.Diagnostics.Bitness);
        Assert.Contains("RAX=1122334455667788", text);
        Assert.Contains(result.Diagnostics.Disassembly, l => l.Contains("ud2") && l.EndsWith("<== RIP"));
    }
}
