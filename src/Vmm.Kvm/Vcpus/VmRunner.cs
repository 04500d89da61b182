using System.Runtime.InteropServices;
using Vmm.Core.Bus;
using Vmm.Kvm.Diagnostics;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Vcpus;

/// <summary>
/// Runs the vCPUs of one VM, one thread each, until the <see cref="VmControl"/> latch records a stop; then kicks
/// every vCPU out of KVM_RUN and joins the threads.
/// </summary>
internal sealed unsafe class VmRunner
{
    private readonly KvmVm _vm;
    private readonly KvmVcpu[] _vcpus;
    private readonly VmControl _control;
    private readonly VmRunOptions _options;
    private readonly Action<string> _log;
    private readonly VcpuExitHandler[] _handlers;
    private readonly int[] _tids;
    private readonly Lock _tidLock = new();

    public VmRunner(KvmVm vm, KvmVcpu[] vcpus, IoBus pioBus, IoBus mmioBus, VmControl control, VmRunOptions options)
    {
        _vm = vm;
        _vcpus = vcpus;
        _control = control;
        _options = options;
        _log = options.Log ?? (static _ => { });
        _tids = new int[vcpus.Length];
        _handlers = new VcpuExitHandler[vcpus.Length];
        for (int i = 0; i < vcpus.Length; i++)
        {
            _handlers[i] = new VcpuExitHandler(vcpus[i], pioBus, mmioBus, control, vm.System.Profile, _log);
        }
    }

    public VmRunResult Run()
    {
        _ = VcpuKicker.Signal; // install before any thread can need it
        PosixSignalRegistration? sigterm = _options.StopOnSigterm
            ? PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                _control.RequestExit(143, "SIGTERM");
            })
            : null;
        var threads = new Thread[_vcpus.Length];
        try
        {
            _control.AttachKick(KickAll);
            for (int i = 0; i < _vcpus.Length; i++)
            {
                int index = i;
                threads[i] = new Thread(() => VcpuThread(index)) { Name = $"vcpu{i}", IsBackground = true };
                threads[i].Start();
            }
            _log($"kvm: running {_vcpus.Length} vCPU(s)");
            _control.Wait();
            KickAll();
            DateTime deadline = DateTime.UtcNow + _options.JoinTimeout;
            foreach (Thread t in threads)
            {
                while (!t.Join(TimeSpan.FromMilliseconds(50)))
                {
                    KickAll(); // a kick can race with a thread between its stop check and KVM_RUN; repeat it
                    if (DateTime.UtcNow > deadline)
                    {
                        _log($"kvm: {t.Name} did not stop within {_options.JoinTimeout.TotalSeconds} s");
                        break;
                    }
                }
            }
            VmRunResult result = _control.Result!;
            if (result.Diagnostics is null && result.Kind == VmStopKind.ExitRequested && _options.CaptureStateOnRequestedExit)
            {
                result = result with { Diagnostics = CrashReport.Capture(_vcpus[0], "state at requested exit", null) };
            }
            _log($"kvm: VM stopped: {result.Kind} ({result.ExitCode}): {result.Reason}");
            return result;
        }
        finally
        {
            _control.AttachKick(null);
            sigterm?.Dispose();
        }
    }

    private void KickAll()
    {
        for (int i = 0; i < _vcpus.Length; i++)
        {
            // Safe: the kvm_run page is mapped until the vCPU is disposed, which happens after the threads are joined.
            Volatile.Write(ref _vcpus[i].Run->ImmediateExit, 1);
        }
        lock (_tidLock)
        {
            foreach (int tid in _tids)
            {
                if (tid != 0)
                {
                    VcpuKicker.Kick(tid);
                }
            }
        }
    }

    private void VcpuThread(int index)
    {
        lock (_tidLock)
        {
            _tids[index] = KvmNative.GetTid();
        }
        try
        {
            _handlers[index].RunLoop();
        }
        catch (Exception e)
        {
            _control.Stop(new VmRunResult(VmStopKind.Fatal, 1, $"vCPU {index}: {e.GetType().Name}: {e.Message}"));
        }
        finally
        {
            lock (_tidLock)
            {
                _tids[index] = 0;
            }
        }
    }
}
