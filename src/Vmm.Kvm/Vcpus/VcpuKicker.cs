using Vmm.Core.Interop;
using Vmm.Kvm.Arch;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Vcpus;

/// <summary>
/// Gets a vCPU thread out of KVM_RUN: the stopper sets <c>kvm_run.immediate_exit</c> (covers a thread that is about
/// to enter) and sends a real-time signal with tgkill (interrupts a thread already inside, KVM_RUN returns EINTR).
/// The handler must run no managed code — a signal can land while the thread is in any state — so it is a
/// one-instruction native function (<c>ret</c>) on its own executable page, installed with sigaction without
/// SA_RESTART, on a real-time signal that nothing in the process has claimed (its disposition is SIG_DFL).
/// </summary>
internal static unsafe class VcpuKicker
{
    private static readonly Lock InstallLock = new();
    private static int _signal;
    private static nint _handlerPage;

    /// <summary>The installed kick signal (installs on first use).</summary>
    public static int Signal
    {
        get
        {
            int s = Volatile.Read(ref _signal);
            return s != 0 ? s : Install();
        }
    }

    /// <summary>Address of the native no-op handler (for tests).</summary>
    internal static nint HandlerAddress => _handlerPage;

    private static int Install()
    {
        lock (InstallLock)
        {
            if (_signal != 0)
            {
                return _signal;
            }
            nint page = Libc.mmap(0, 4096, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
            if (page == Libc.MAP_FAILED)
            {
                throw KvmException.FromLastError("mmap(signal handler page)");
            }
            // Safe: the page was just mapped read-write and is 4096 bytes long; the handler is one return instruction
            // of at most 4 bytes.
            KvmArchitecture.Host.ReturnInstruction.CopyTo(new Span<byte>((void*)page, 4096));
            if (Libc.mprotect(page, 4096, Libc.PROT_READ | Libc.PROT_EXEC) != 0)
            {
                throw KvmException.FromLastError("mprotect(signal handler page)");
            }
            // .NET uses SIGRTMIN for thread activation injection; glibc reserves the two below it. Search from the
            // top for a signal whose disposition is still the default.
            int min = KvmNative.CurrentSigRtMin(), max = KvmNative.CurrentSigRtMax();
            for (int signal = max - 1; signal > min + 1; signal--)
            {
                KvmNative.SigActionStruct current;
                if (KvmNative.SigAction(signal, null, &current) != 0 || current.Handler != 0)
                {
                    continue; // SIG_DFL is 0; anything else belongs to someone
                }
                var action = new KvmNative.SigActionStruct { Handler = page, Flags = 0 }; // no SA_RESTART, empty mask
                if (KvmNative.SigAction(signal, &action, null) != 0)
                {
                    throw KvmException.FromLastError($"sigaction({signal})");
                }
                _handlerPage = page;
                Volatile.Write(ref _signal, signal);
                return signal;
            }
            throw new KvmException("no free real-time signal for kicking vCPUs");
        }
    }

    /// <summary>Sends the kick to thread <paramref name="tid"/> of this process; false if the thread is gone.</summary>
    public static bool Kick(int tid)
    {
        if (KvmNative.TgKill(Environment.ProcessId, tid, Signal) == 0)
        {
            return true;
        }
        int errno = KvmNative.LastErrno;
        return errno == KvmNative.ESRCH ? false : throw new KvmException("tgkill", errno);
    }
}
