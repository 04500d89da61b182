using System.Runtime.InteropServices;

namespace Vmm.PerfLab.Measurement;

/// <summary>
/// The physical anchor of the transport suite: the CPU cost of copying one frame once (<c>sizeimage</c> bytes,
/// page-aligned source and destination that are already faulted in), which is what a VMM that copies frames pays
/// at least once per frame.
/// </summary>
internal static unsafe class CopyAnchor
{
    /// <summary>Mean CPU nanoseconds of one copy of <paramref name="bytes"/> bytes, over at least
    /// <paramref name="minimumCopies"/> copies and 200 ms of CPU.</summary>
    public static double NanosecondsPerCopy(long bytes, int minimumCopies)
    {
        // Safe: both blocks are allocated here with the length used, freed in finally, and never escape.
        byte* source = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        byte* destination = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            new Span<byte>(source, (int)bytes).Fill(0x5A);
            new Span<byte>(destination, (int)bytes).Clear();
            Buffer.MemoryCopy(source, destination, bytes, bytes); // warm-up
            long start = CpuClock.CurrentThread();
            int copies = 0;
            while (copies < minimumCopies || CpuClock.CurrentThread() - start < 200_000_000)
            {
                Buffer.MemoryCopy(source, destination, bytes, bytes);
                copies++;
            }
            return (double)(CpuClock.CurrentThread() - start) / copies;
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(destination);
        }
    }
}
