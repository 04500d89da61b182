using System.Numerics;
using System.Runtime.InteropServices;

namespace Vmm.Devices.VirtioMedia.Buffers;

/// <summary>The frame checksum every verifier here agrees on (testbed, firmware guest, lab reference): CRC-32C
/// (Castagnoli), computed with the CPU's CRC32 instruction where there is one.</summary>
public static class FrameChecksum
{
    /// <summary>CRC-32C of the given bytes, continuing from <paramref name="crc"/> (start with 0xFFFFFFFF; XOR the
    /// final value with 0xFFFFFFFF — <see cref="Compute(ReadOnlySpan{byte})"/> does both).</summary>
    public static uint Crc32CUpdate(uint crc, ReadOnlySpan<byte> data)
    {
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong w in words)
        {
            crc = BitOperations.Crc32C(crc, w);
        }
        for (int i = words.Length * 8; i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }
        return crc;
    }

    /// <summary>CRC-32C of one contiguous image.</summary>
    public static uint Compute(ReadOnlySpan<byte> image) => Crc32CUpdate(0xFFFFFFFF, image) ^ 0xFFFFFFFF;

    /// <summary>CRC-32C over several memory planes, in order.</summary>
    public static uint Compute(ReadOnlySpan<byte> plane0, ReadOnlySpan<byte> plane1, ReadOnlySpan<byte> plane2) =>
        Crc32CUpdate(Crc32CUpdate(Crc32CUpdate(0xFFFFFFFF, plane0), plane1), plane2) ^ 0xFFFFFFFF;
}
