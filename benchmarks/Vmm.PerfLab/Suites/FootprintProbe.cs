using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Vmm.PerfLab.Suites;

/// <summary>What one run of <c>vmm</c> cost. Memory is resident set in bytes, from /proc/PID/smaps while the guest
/// streams; the VMM's own is everything but guest RAM and the virtio-media shared-memory region.</summary>
internal sealed record FootprintSample(
    double StartToFirstGuestEntryMs, long VmmRss, long VmmAnonymousRss, long VmmFileRss, long GuestRamRss, long SharedMemoryRss);

/// <summary>
/// One run of a <c>vmm</c> build (the JIT one through <c>dotnet vmm.dll</c>, or the NativeAOT binary) streaming
/// 640×480 NV12 from the firmware guest at 60 fps, as a child process.
/// <para>Start-up: CLOCK_MONOTONIC (Stopwatch) just before Process.Start here, against the time the VMM logs
/// (<c>--log-level debug</c>) for vCPU 0's first KVM_RUN, which enters the guest at its first instruction. Fork and
/// exec are inside; .NET's own start-up, KVM set-up, loading the payload and building the devices are too.</para>
/// <para>Memory: /proc/PID/smaps (and pagemap) read at the guest's FRAME line for frame 120 (2 s of streaming). Guest
/// RAM is found by the host addresses the VMM logs for it; the shared-memory region by its memfd name ("virtio-media-shm0"):
/// both are guest-visible memory, not the VMM's. Shared file pages (the binary, the runtime's libraries) count, as
/// RSS counts them.</para>
/// </summary>
internal static class FootprintProbe
{
    public const uint Width = 640, Height = 480, Fps = 60;
    public const int GuestMemMiB = 64;

    /// <summary>FRAME lines are printed for frames 0, 60, 120 and 180: sample at the third (2 s of streaming).</summary>
    private const int Frames = 181, PrintEvery = 60, SampleAtFrameLine = 3;

    private const string FirstEntryMarker = "entered the guest first at CLOCK_MONOTONIC ";
    private const string GuestRamMarker = "vmm debug: guest RAM ";

    /// <param name="command">The program and the arguments before <c>run</c> (<c>dotnet vmm.dll</c>, or the binary).</param>
    /// <param name="sample">False for a warm-up run (page cache, the lab's own first Process.Start): nothing is read.</param>
    public static FootprintSample? Run(string[] command, string firmware, bool sample)
    {
        string camera = $"test-pattern,width={Width},height={Height},fps={Fps},format=NV12";
        string cmdline = $"width={Width} height={Height} format=NV12 frames={(sample ? Frames : 1)} print_first=1 print_every={PrintEvery}";
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (string a in command.AsSpan(1))
        {
            start.ArgumentList.Add(a);
        }
        foreach (string a in new[] { "run", "--kernel", firmware, "--mem", GuestMemMiB.ToString(CultureInfo.InvariantCulture), "--media", camera, "--cmdline", cmdline, "--log-level", "debug" })
        {
            start.ArgumentList.Add(a);
        }
        long started = Stopwatch.GetTimestamp();
        using Process vmm = Process.Start(start)!;
        var stderr = new StringBuilder();
        Task errors = Task.Run(() =>
        {
            string? l;
            while ((l = vmm.StandardError.ReadLine()) is not null)
            {
                lock (stderr)
                {
                    stderr.Append(l).Append('\n');
                }
            }
        });
        FootprintSample? memory = null;
        int frameLines = 0;
        string? line;
        while ((line = vmm.StandardOutput.ReadLine()) is not null)
        {
            if (sample && line.StartsWith("FRAME ", StringComparison.Ordinal) && ++frameLines == SampleAtFrameLine)
            {
                string logSoFar;
                lock (stderr)
                {
                    logSoFar = stderr.ToString();
                }
                memory = SampleMemory(vmm.Id, GuestRamRanges(logSoFar));
            }
        }
        vmm.WaitForExit();
        errors.Wait();
        string log = stderr.ToString();
        if (vmm.ExitCode != 0)
        {
            throw new InvalidOperationException($"{string.Join(' ', command)} run of the streaming firmware failed (exit {vmm.ExitCode}): {log.Trim()}");
        }
        if (!sample)
        {
            return null;
        }
        if (memory is null)
        {
            throw new InvalidOperationException($"{string.Join(' ', command)}: the guest printed {frameLines} FRAME lines, fewer than {SampleAtFrameLine}");
        }
        double firstEntry = FirstEntrySeconds(log) ?? throw new InvalidOperationException(
            $"{string.Join(' ', command)} did not log vCPU 0's first guest entry (\"{FirstEntryMarker}\"); is it older than this lab?");
        return memory with { StartToFirstGuestEntryMs = (firstEntry - (double)started / Stopwatch.Frequency) * 1000 };
    }

    /// <summary>"... vcpu0 entered the guest first at CLOCK_MONOTONIC 29337.585167 s; ..." → seconds.</summary>
    private static double? FirstEntrySeconds(string log)
    {
        int at = log.IndexOf(FirstEntryMarker, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }
        ReadOnlySpan<char> rest = log.AsSpan(at + FirstEntryMarker.Length);
        return double.Parse(rest[..rest.IndexOf(' ')], CultureInfo.InvariantCulture);
    }

    /// <summary>"vmm debug: guest RAM 0x0-0x3ffffff at host 0x7faecc000000-0x7faecfffffff" → host [start, end).</summary>
    private static List<(ulong Start, ulong End)> GuestRamRanges(string log)
    {
        var ranges = new List<(ulong, ulong)>();
        foreach (string line in log.Split('\n'))
        {
            int at = line.IndexOf(GuestRamMarker, StringComparison.Ordinal);
            int host = line.IndexOf(" at host 0x", StringComparison.Ordinal);
            if (at < 0 || host < 0)
            {
                continue;
            }
            string[] bounds = line[(host + " at host ".Length)..].Trim().Split('-');
            ranges.Add((ParseHex(bounds[0]), ParseHex(bounds[1]) + 1));
        }
        if (ranges.Count == 0)
        {
            throw new InvalidOperationException($"the VMM did not log where guest RAM is (\"{GuestRamMarker}\")");
        }
        return ranges;
    }

    private static ulong ParseHex(string text) => ulong.Parse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>Sums each mapping's Rss (/proc/PID/smaps) into guest RAM, the shared-memory region, or the VMM
    /// (anonymous or file-backed). The kernel merges guest RAM's mapping with a neighbouring anonymous one of the
    /// same protection (a thread stack, a heap), so a mapping's Rss can hold both: guest RAM's share is counted
    /// page by page in /proc/PID/pagemap, and the rest of such a mapping is the VMM's.</summary>
    private static FootprintSample SampleMemory(int pid, List<(ulong Start, ulong End)> guestRam)
    {
        string smaps = File.ReadAllText($"/proc/{pid}/smaps");
        long guest = ResidentBytes(pid, guestRam);
        long vmmAnon = -guest, vmmFile = 0, shm = 0;
        ulong start = 0, end = 0;
        string path = "";
        foreach (string line in smaps.Split('\n'))
        {
            if (IsMappingHeader(line, out ulong s, out ulong e, out string p))
            {
                (start, end, path) = (s, e, p);
                continue;
            }
            if (!line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                continue;
            }
            long bytes = long.Parse(line.AsSpan(4).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
            if (path.StartsWith("/memfd:virtio-media-shm", StringComparison.Ordinal))
            {
                shm += bytes;
            }
            else if (path.StartsWith('/') && !path.StartsWith("/memfd:", StringComparison.Ordinal))
            {
                vmmFile += bytes;
            }
            else
            {
                vmmAnon += bytes; // anonymous (guest RAM too, taken off above), [heap], [stack], the runtime's memfds
            }
        }
        return new FootprintSample(double.NaN, vmmAnon + vmmFile, vmmAnon, vmmFile, guest, shm);
    }

    /// <summary>Bytes of the ranges present in process <paramref name="pid"/>'s page tables (pagemap bit 63):
    /// for private anonymous memory, its resident set.</summary>
    private static long ResidentBytes(int pid, List<(ulong Start, ulong End)> ranges)
    {
        const int PageSize = 4096;
        using SafeFileHandle pagemap = File.OpenHandle($"/proc/{pid}/pagemap");
        long present = 0;
        byte[] entries = new byte[8 * 4096];
        foreach ((ulong start, ulong end) in ranges)
        {
            for (ulong page = start / PageSize; page < end / PageSize;)
            {
                int count = (int)Math.Min((ulong)entries.Length / 8, end / PageSize - page);
                int read = RandomAccess.Read(pagemap, entries.AsSpan(0, count * 8), (long)page * 8);
                if (read != count * 8)
                {
                    throw new InvalidOperationException($"short read of /proc/{pid}/pagemap");
                }
                for (int i = 0; i < count; i++)
                {
                    present += (long)(BitConverter.ToUInt64(entries, i * 8) >> 63);
                }
                page += (ulong)count;
            }
        }
        return present * PageSize;
    }

    /// <summary>"7f5fbca00000-7f60bca00000 rw-s 00000000 00:01 1045 /memfd:virtio-media-shm0 (deleted)".</summary>
    private static bool IsMappingHeader(string line, out ulong start, out ulong end, out string path)
    {
        start = end = 0;
        path = "";
        string[] fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        int dash = fields.Length < 5 ? -1 : fields[0].IndexOf('-');
        if (dash < 0
            || !ulong.TryParse(fields[0].AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out start)
            || !ulong.TryParse(fields[0].AsSpan(dash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out end))
        {
            return false;
        }
        path = fields.Length == 6 ? fields[5].Trim() : "";
        return true;
    }
}
