using Vmm.Kvm.Diagnostics;

namespace Vmm.Kvm.Vcpus;

/// <summary>Why a VM stopped.</summary>
public enum VmStopKind
{
    /// <summary>A device or the host asked (<see cref="Vmm.Core.Platform.IVmControl.RequestExit"/>).</summary>
    ExitRequested,
    /// <summary>The guest powered off, reset or halted its only way out (KVM_EXIT_SYSTEM_EVENT, HLT exit).</summary>
    GuestStopped,
    /// <summary>A vCPU hit an exit the VMM cannot continue from; <see cref="VmRunResult.Diagnostics"/> says why.</summary>
    Fatal,
}

/// <summary>The outcome of <see cref="KvmVm.Run"/>.</summary>
/// <param name="ExitCode">What the VMM process should exit with: the requested code, 0 for a guest power-off,
/// 1 for a fatal exit.</param>
/// <param name="Reason">One line for the log.</param>
/// <param name="Diagnostics">The crash report of the failing vCPU for fatal exits.</param>
public sealed record VmRunResult(VmStopKind Kind, int ExitCode, string Reason, CrashReport? Diagnostics = null)
{
    public override string ToString() => Diagnostics is null ? $"{Kind} ({ExitCode}): {Reason}" : $"{Kind} ({ExitCode}): {Reason}\n{Diagnostics}";
}

/// <summary>Options for <see cref="KvmVm.Run"/>.</summary>
public sealed class VmRunOptions
{
    /// <summary>Receives log lines (vCPU start/stop, repairs, the stop reason). Null: no logging.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Turn SIGTERM into <c>RequestExit(143, "SIGTERM")</c> while the VM runs (the CLI sets this).</summary>
    public bool StopOnSigterm { get; init; }

    /// <summary>How long to wait for vCPU threads after the stop before giving up on joining them.</summary>
    public TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>On a requested exit, also capture vCPU 0's registers and code (e.g. to see where a guest that timed
    /// out was spinning).</summary>
    public bool CaptureStateOnRequestedExit { get; init; }
}
