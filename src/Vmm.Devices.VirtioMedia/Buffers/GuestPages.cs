using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>Copies between a host span and a guest scatter list (a control payload's SHARED_PAGES list), through
/// checked spans of guest RAM: a segment that is not guest RAM fails the copy.</summary>
public static class GuestPages
{
    /// <summary>Total bytes the list covers (saturated at uint.MaxValue).</summary>
    public static uint Length(ReadOnlySpan<SgEntry> entries)
    {
        ulong sum = 0;
        foreach (SgEntry e in entries)
        {
            sum += e.Length;
        }
        return (uint)Math.Min(sum, uint.MaxValue);
    }

    /// <summary>Fills <paramref name="destination"/> from the list (as far as both reach); false when a segment is not
    /// guest RAM.</summary>
    public static bool CopyFrom(GuestMemory memory, ReadOnlySpan<SgEntry> entries, Span<byte> destination)
    {
        int at = 0;
        foreach (SgEntry e in entries)
        {
            int n = (int)Math.Min(e.Length, (uint)(destination.Length - at));
            if (!memory.TryGetSpan(new GuestAddress(e.Start), (ulong)n, out Span<byte> src))
            {
                return false;
            }
            src.CopyTo(destination[at..]);
            at += n;
        }
        return true;
    }

    /// <summary>Writes <paramref name="source"/> into the list (as far as both reach); false when a segment is not
    /// guest RAM.</summary>
    public static bool CopyTo(GuestMemory memory, ReadOnlySpan<SgEntry> entries, ReadOnlySpan<byte> source)
    {
        int at = 0;
        foreach (SgEntry e in entries)
        {
            if (at >= source.Length)
            {
                break;
            }
            int n = (int)Math.Min(e.Length, (uint)(source.Length - at));
            if (!memory.TryGetSpan(new GuestAddress(e.Start), (ulong)n, out Span<byte> dst))
            {
                return false;
            }
            source.Slice(at, n).CopyTo(dst);
            at += n;
        }
        return true;
    }
}
