using System.Runtime.InteropServices;

namespace Vmm.Kvm;

/// <summary>A KVM ioctl (or related system call) failed: names the call and the errno.</summary>
public class KvmException : IOException
{
    public KvmException(string call, int errno)
        : base($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
    {
        Call = call;
        Errno = errno;
    }

    public KvmException(string message) : base(message)
    {
        Call = "";
    }

    /// <summary>The failed call, e.g. "KVM_SET_SREGS".</summary>
    public string Call { get; }

    /// <summary>The errno, or 0 when the failure was not a system call error.</summary>
    public int Errno { get; }

    internal static KvmException FromLastError(string call) => new(call, Marshal.GetLastPInvokeError());
}

/// <summary>
/// /dev/kvm cannot be used at all (missing, no permission, wrong API version). <see cref="Exception.Message"/> is a
/// single line fit for a command-line tool to print, e.g. "cannot open /dev/kvm: Permission denied".
/// </summary>
public sealed class KvmUnavailableException : Exception
{
    public KvmUnavailableException(string message, int errno = 0) : base(message) => Errno = errno;

    public int Errno { get; }
}
