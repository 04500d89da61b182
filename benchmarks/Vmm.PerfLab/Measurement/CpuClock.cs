using System.Globalization;
using System.Runtime.InteropServices;

namespace Vmm.PerfLab.Measurement;

/// <summary>
/// CPU time from the kernel's scheduler accounting (<c>/proc/…/schedstat</c>, first field: nanoseconds on a CPU).
/// It has nanosecond resolution where <c>getrusage</c> and <c>/proc/…/stat</c> tick at 10 ms, which matters for
/// runs of a second or two. A thread that has ended drops out of <c>/proc/self/task</c>, so read while the threads
/// being measured are alive. Schedstat brings a thread's figure up to date only when the thread is switched out or at
/// a scheduler tick (4 ms at HZ=250), so a thread that never blocks reads its own time with
/// <c>CLOCK_THREAD_CPUTIME_ID</c> instead, which the kernel brings up to date on the call.
/// </summary>
internal static partial class CpuClock
{
    private const int ClockThreadCpuTimeId = 3; // CLOCK_THREAD_CPUTIME_ID, <linux/time.h>

    /// <summary>CPU nanoseconds of the calling thread, exact at the moment of the call.</summary>
    public static long CurrentThread()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out TimeSpec t) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;     // time_t: 64-bit on x86_64 and arm64
        public long Nanoseconds; // long
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    private static partial int ClockGetTime(int clockId, out TimeSpec time);

    /// <summary>CPU nanoseconds summed over this process's threads whose name starts with
    /// <paramref name="namePrefix"/> (the OS name: the managed name cut to 15 bytes).</summary>
    public static long ThreadsNamed(string namePrefix)
    {
        long total = 0;
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith(namePrefix, StringComparison.Ordinal))
                {
                    total += Schedstat(Path.Combine(task, "schedstat"));
                }
            }
            catch (IOException)
            {
                // The thread ended between listing and reading: its time is gone with it.
            }
        }
        return total;
    }

    /// <summary>The first field of a <c>schedstat</c> file: nanoseconds on a CPU.</summary>
    public static long Schedstat(string path)
    {
        string text = File.ReadAllText(path);
        int space = text.IndexOf(' ');
        return long.Parse(space < 0 ? text : text[..space], CultureInfo.InvariantCulture);
    }
}
