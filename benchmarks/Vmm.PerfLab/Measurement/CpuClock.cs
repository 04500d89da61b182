using System.Globalization;

namespace Vmm.PerfLab.Measurement;

/// <summary>
/// CPU time from the kernel's scheduler accounting (<c>/proc/…/schedstat</c>, first field: nanoseconds on a CPU).
/// It has nanosecond resolution where <c>getrusage</c> and <c>/proc/…/stat</c> tick at 10 ms, which matters for
/// runs of a second or two. A thread that has ended drops out of <c>/proc/self/task</c>, so read while the threads
/// being measured are alive.
/// </summary>
internal static class CpuClock
{
    /// <summary>CPU nanoseconds of the calling thread.</summary>
    public static long CurrentThread() => Schedstat("/proc/thread-self/schedstat");

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
