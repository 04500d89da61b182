using System.Runtime.InteropServices;

namespace Vmm.Core.Interop;

/// <summary>A failed system call: which call and the errno it returned.</summary>
public sealed class ErrnoException : IOException
{
    public ErrnoException(string call, int errno)
        : base($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno)
    {
        Call = call;
        Errno = errno;
    }

    public string Call { get; }
    public int Errno { get; }

    /// <summary>Throws for the current errno; call right after a failed LibraryImport with SetLastError.</summary>
    public static ErrnoException FromLastError(string call) => new(call, Marshal.GetLastPInvokeError());
}
