using Vmm.Core.Platform;

namespace Vmm.Kvm.Vcpus;

/// <summary>
/// The VM's stop latch: the first stop (device request, host request, guest power-off or fatal exit) records the
/// result, wakes the thread waiting in <see cref="KvmVm.Run"/>, and kicks every vCPU out of KVM_RUN. Later stops
/// are ignored. Usable before the VM runs: an early request makes <see cref="KvmVm.Run"/> return at once.
/// </summary>
internal sealed class VmControl : IVmControl
{
    private readonly ManualResetEventSlim _stopped = new(false);
    private VmRunResult? _result;
    private Action? _kickAll;

    public bool IsStopRequested => Volatile.Read(ref _result) is not null;

    public VmRunResult? Result => Volatile.Read(ref _result);

    public WaitHandle WaitHandle => _stopped.WaitHandle;

    public void RequestExit(int exitCode, string reason) =>
        Stop(new VmRunResult(VmStopKind.ExitRequested, exitCode, reason));

    /// <summary>Records <paramref name="result"/> if no stop came first; true when this call won.</summary>
    public bool Stop(VmRunResult result)
    {
        if (Interlocked.CompareExchange(ref _result, result, null) is not null)
        {
            return false;
        }
        _stopped.Set();
        Volatile.Read(ref _kickAll)?.Invoke();
        return true;
    }

    /// <summary>Installs the kick for running vCPUs; runs it at once if a stop is already recorded.</summary>
    public void AttachKick(Action? kickAll)
    {
        Volatile.Write(ref _kickAll, kickAll);
        if (kickAll is not null && IsStopRequested)
        {
            kickAll();
        }
    }

    public void Wait() => _stopped.Wait();
}
