using System.Diagnostics;
using System.Globalization;
using Vmm.Core.Bus;
using Vmm.Kvm.Diagnostics;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Vcpus;

/// <summary>
/// One vCPU's run loop: KVM_RUN, then dispatch on the exit read in place from the kvm_run page. Port and MMIO
/// accesses go to the buses through spans over that page (no copies, no allocation); fatal exits stop the VM
/// with a <see cref="CrashReport"/>.
/// </summary>
internal sealed unsafe class VcpuExitHandler(
    KvmVcpu vcpu, IoBus pioBus, IoBus mmioBus, VmControl control, HostProfile profile, Action<string> log)
{
    private const int RepairLogLimit = 5;
    private int _repairs;

    public long ExitCount { get; private set; }

    public void RunLoop()
    {
        // Safe: the kvm_run page stays mapped until the vCPU is disposed, after this thread has been joined.
        KvmRun* run = vcpu.Run;
        // vCPU 0 runs the guest's first instruction: its first entry ends the VMM's start-up (logged for start-up
        // measurements, which compare it with a CLOCK_MONOTONIC time taken before the VMM process was started).
        bool firstEntry = vcpu.Index == 0;
        while (!control.IsStopRequested)
        {
            long entered = firstEntry ? Stopwatch.GetTimestamp() : 0;
            int errno = vcpu.RunOnce();
            if (firstEntry)
            {
                firstEntry = false;
                LogFirstEntry(entered, Stopwatch.GetTimestamp());
            }
            if (errno != 0)
            {
                if (errno is KvmNative.EINTR or KvmNative.EAGAIN)
                {
                    continue; // kicked (the loop condition sees the stop) or a spurious wakeup
                }
                // arm64 KVM fails KVM_RUN with ENOSYS for an MMIO access it cannot decode (no valid syndrome, e.g.
                // a load/store pair): the guest's doing, and fatal to it, as on QEMU.
                Fatal(errno == KvmNative.ENOSYS
                    ? "KVM_RUN failed: ENOSYS (an MMIO access KVM cannot decode, such as a load/store pair to a device)"
                    : $"KVM_RUN failed: errno {errno}", null);
                return;
            }
            ExitCount++;
            VcpuExitMetrics.Count(run->ExitReason);
            if (!HandleExit(run))
            {
                return;
            }
        }
    }

    /// <summary>Logs when vCPU 0 first entered the guest, as CLOCK_MONOTONIC seconds (what Stopwatch reads on Linux),
    /// after the first exit so the formatting does not delay the entry.</summary>
    private void LogFirstEntry(long entered, long exited) =>
        log(string.Create(CultureInfo.InvariantCulture,
            $"kvm: vcpu0 entered the guest first at CLOCK_MONOTONIC {(double)entered / Stopwatch.Frequency:F6} s; first exit {Stopwatch.GetElapsedTime(entered, exited).TotalMicroseconds:F0} µs later"));

    /// <summary>Handles one exit; false when the vCPU must stop.</summary>
    private bool HandleExit(KvmRun* run)
    {
        switch ((KvmExitReason)run->ExitReason)
        {
            case KvmExitReason.Io:
                if (!DispatchIo(run, vcpu.RunSize, pioBus))
                {
                    Fatal("KVM_EXIT_IO with malformed exit data", null);
                    return false;
                }
                return true;
            case KvmExitReason.Mmio:
                if (!DispatchMmio(run, mmioBus))
                {
                    Fatal($"KVM_EXIT_MMIO with malformed length {run->MmioLen}", null);
                    return false;
                }
                return true;
            case KvmExitReason.IrqWindowOpen:
                run->RequestInterruptWindow = 0;
                return true;
            case KvmExitReason.Intr:
                return true;
            case KvmExitReason.Hlt:
                // Only without an in-kernel LAPIC: nothing could wake the vCPU again.
                control.Stop(new VmRunResult(VmStopKind.GuestStopped, 0, $"vCPU {vcpu.Index} halted"));
                return false;
            case KvmExitReason.Shutdown:
                const string tripleFault = "triple fault (KVM_EXIT_SHUTDOWN)";
                if (vcpu.Vm.System.KeepsRegistersAfterShutdown)
                {
                    Fatal(tripleFault, null);
                }
                else
                {
                    // Reading them would show the reset state as if it were the fault's.
                    control.Stop(new VmRunResult(VmStopKind.Fatal, 1, $"vCPU {vcpu.Index}: {tripleFault}",
                        CrashReport.WithoutRegisters(vcpu.Index, tripleFault, null,
                            $"{vcpu.Vm.System.Vendor} CPUs: KVM re-initialises the vCPU after a SHUTDOWN intercept, so the state at the fault is lost")));
                }
                return false;
            case KvmExitReason.FailEntry:
                Fatal("KVM_EXIT_FAIL_ENTRY", $"hardware entry failure reason 0x{run->FailEntryHardwareReason:x}, cpu {run->FailEntryCpu}");
                return false;
            case KvmExitReason.InternalError:
                return HandleInternalError(run);
            case KvmExitReason.SystemEvent:
                return HandleSystemEvent(run);
            default:
                Fatal($"unhandled exit reason {run->ExitReason} ({(KvmExitReason)run->ExitReason})", null);
                return false;
        }
    }

    /// <summary>
    /// Port I/O: <c>count</c> accesses of <c>size</c> bytes at <c>data_offset</c> in the kvm_run page (string I/O
    /// has count &gt; 1). Unclaimed reads return all-ones, like an empty ISA bus. False on malformed exit data.
    /// </summary>
    internal static bool DispatchIo(KvmRun* run, int runSize, IoBus bus)
    {
        uint size = run->IoSize;
        uint count = run->IoCount;
        ulong offset = run->IoDataOffset;
        if (size is not (1 or 2 or 4) || count == 0 || offset >= (ulong)runSize || (ulong)size * count > (ulong)runSize - offset)
        {
            return false;
        }
        ushort port = run->IoPort;
        byte* data = (byte*)run + offset;
        bool isOut = run->IoDirection == KvmConstants.IoDirectionOut;
        for (uint i = 0; i < count; i++)
        {
            // Safe: [offset, offset + size*count) was checked to lie inside the kvm_run mapping.
            var span = new Span<byte>(data + i * size, (int)size);
            if (isOut)
            {
                bus.Write(port, span);
            }
            else if (!bus.Read(port, span))
            {
                span.Fill(0xFF);
            }
        }
        return true;
    }

    /// <summary>MMIO: up to 8 bytes in the exit's data field. Unclaimed reads return all-ones.</summary>
    internal static bool DispatchMmio(KvmRun* run, IoBus bus)
    {
        uint length = run->MmioLen;
        if (length is 0 or > 8)
        {
            return false;
        }
        // Safe: MmioData is an 8-byte field of the mapped kvm_run, and length <= 8.
        var span = new Span<byte>(run->MmioData, (int)length);
        if (run->MmioIsWrite != 0)
        {
            bus.Write(run->MmioPhysAddr, span);
        }
        else if (!bus.Read(run->MmioPhysAddr, span))
        {
            span.Fill(0xFF);
        }
        return true;
    }

    private bool HandleSystemEvent(KvmRun* run)
    {
        uint type = run->SystemEventType;
        VmRunResult result = type switch
        {
            KvmConstants.SystemEventShutdown => new(VmStopKind.GuestStopped, 0, "guest powered off"),
            KvmConstants.SystemEventReset => new(VmStopKind.GuestStopped, 0, "guest requested a reset (reboot is not supported)"),
            KvmConstants.SystemEventCrash => new(VmStopKind.Fatal, 1, "guest crashed (KVM_SYSTEM_EVENT_CRASH)", Capture("guest crash", null)),
            _ => new(VmStopKind.Fatal, 1, $"unknown system event {type}", Capture($"system event {type}", null)),
        };
        control.Stop(result);
        return false;
    }

    private bool HandleInternalError(KvmRun* run)
    {
        uint suberror = run->InternalSuberror;
        if (suberror == KvmConstants.InternalErrorEmulation)
        {
            Span<byte> instruction = stackalloc byte[15];
            int length = ReadFailedInstruction(run, instruction);
            EmulationRepair repair = profile.ChooseRepair(instruction[..length]);
            if (repair != EmulationRepair.None)
            {
                ApplyRepair(repair);
                return true;
            }
        }
        uint ndata = Math.Min(run->InternalNdata, 16);
        var details = new System.Text.StringBuilder($"suberror {suberror}");
        if (suberror == KvmConstants.InternalErrorEmulation)
        {
            details.Append(" (emulation failure)");
        }
        for (int i = 0; i < ndata; i++)
        {
            details.Append(i == 0 ? ", data:" : "").Append($" 0x{run->InternalData[i]:x}");
        }
        Fatal(suberror == KvmConstants.InternalErrorEmulation ? "emulation failure (KVM_EXIT_INTERNAL_ERROR)" : "KVM_EXIT_INTERNAL_ERROR", details.ToString());
        return false;
    }

    /// <summary>The failed instruction's bytes: from the exit when KVM supplied them, else read at RIP.</summary>
    private int ReadFailedInstruction(KvmRun* run, Span<byte> destination)
    {
        if (run->InternalNdata >= 3 && (run->EmulationFailureFlags & KvmConstants.EmulationFlagInstructionBytes) != 0)
        {
            // Safe: insn_bytes is a 15-byte field and the size is clamped to it.
            int size = Math.Min((int)run->EmulationFailureInsnSize, 15);
            new ReadOnlySpan<byte>(run->EmulationFailureInsnBytes, size).CopyTo(destination);
            return size;
        }
        return GuestCode.ReadAtRip(vcpu, destination);
    }

    private void ApplyRepair(EmulationRepair repair)
    {
        KvmRegs regs = vcpu.GetRegs();
        ulong rip = regs.Rip;
        regs.Rip += 1; // both repaired instructions are one byte long
        vcpu.SetRegs(regs);
        if (repair == EmulationRepair.SkipAndInjectBreakpoint)
        {
            KvmVcpuEvents events = vcpu.GetEvents();
            events.ExceptionInjected = 1;
            events.ExceptionNr = 3; // #BP
            events.ExceptionHasErrorCode = 0;
            events.ExceptionErrorCode = 0;
            events.ExceptionPending = 0;
            vcpu.SetEvents(events);
        }
        if (++_repairs <= RepairLogLimit)
        {
            log($"kvm: vCPU {vcpu.Index}: repaired failed emulation at RIP 0x{rip:x}: {repair}" +
                (_repairs == RepairLogLimit ? " (further repairs not logged)" : ""));
        }
    }

    private CrashReport Capture(string reason, string? details) => CrashReport.Capture(vcpu, reason, details);

    private void Fatal(string reason, string? details)
    {
        CrashReport report = Capture(reason, details);
        control.Stop(new VmRunResult(VmStopKind.Fatal, 1, $"vCPU {vcpu.Index}: {reason}", report));
    }
}
