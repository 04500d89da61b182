using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>Fills byte runs with a repeating 1-, 2-, 3- or 4-byte pixel pattern using 256-bit (or 128-bit) vector
/// stores. The 3-byte (RGB24) case stores a precomputed 96-byte period as three vectors per step.</summary>
public static class PatternFill
{
    public static void Fill1(Span<byte> destination, byte value) => destination.Fill(value);

    public static void Fill2(Span<byte> destination, byte b0, byte b1) =>
        FillPeriodic4(destination, (uint)(b0 | b1 << 8 | b0 << 16 | b1 << 24));

    public static void Fill4(Span<byte> destination, byte b0, byte b1, byte b2, byte b3) =>
        FillPeriodic4(destination, (uint)(b0 | b1 << 8 | b2 << 16 | b3 << 24));

    private static void FillPeriodic4(Span<byte> destination, uint pattern)
    {
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        int length = destination.Length;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && length >= 32)
        {
            Vector256<byte> v = Vector256.Create(pattern).AsByte();
            for (; i <= length - 32; i += 32)
            {
                v.StoreUnsafe(ref dst, (nuint)i);
            }
        }
        else if (Vector128.IsHardwareAccelerated && length >= 16)
        {
            Vector128<byte> v = Vector128.Create(pattern).AsByte();
            for (; i <= length - 16; i += 16)
            {
                v.StoreUnsafe(ref dst, (nuint)i);
            }
        }
        for (; i < length; i++)
        {
            Unsafe.Add(ref dst, i) = (byte)(pattern >> (8 * (i & 3)));
        }
    }

    /// <summary>Fills with the repeating triple (b0, b1, b2), starting with b0.</summary>
    public static void Fill3(Span<byte> destination, byte b0, byte b1, byte b2)
    {
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        int length = destination.Length;
        int i = 0;
        if (Vector256.IsHardwareAccelerated && length >= 96)
        {
            // Period of 96 bytes = lcm(3, 32): three vectors, each a rotation of the triple.
            Vector256<byte> v0 = Triple256(b0, b1, b2);
            Vector256<byte> v1 = Triple256(b2, b0, b1); // byte 32 is index 32 % 3 = 2 of the triple
            Vector256<byte> v2 = Triple256(b1, b2, b0); // byte 64 is index 64 % 3 = 1
            for (; i <= length - 96; i += 96)
            {
                v0.StoreUnsafe(ref dst, (nuint)i);
                v1.StoreUnsafe(ref dst, (nuint)(i + 32));
                v2.StoreUnsafe(ref dst, (nuint)(i + 64));
            }
        }
        else if (Vector128.IsHardwareAccelerated && length >= 48)
        {
            Vector128<byte> v0 = Triple128(b0, b1, b2);
            Vector128<byte> v1 = Triple128(b1, b2, b0); // byte 16 is index 16 % 3 = 1
            Vector128<byte> v2 = Triple128(b2, b0, b1); // byte 32 is index 32 % 3 = 2
            for (; i <= length - 48; i += 48)
            {
                v0.StoreUnsafe(ref dst, (nuint)i);
                v1.StoreUnsafe(ref dst, (nuint)(i + 16));
                v2.StoreUnsafe(ref dst, (nuint)(i + 32));
            }
        }
        // i is a multiple of 3 here, so the tail continues the same phase.
        for (; i < length; i++)
        {
            int phase = i % 3;
            Unsafe.Add(ref dst, i) = phase == 0 ? b0 : phase == 1 ? b1 : b2;
        }
    }

    private static Vector256<byte> Triple256(byte a, byte b, byte c) => Vector256.Create(
        a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a, b);

    private static Vector128<byte> Triple128(byte a, byte b, byte c) => Vector128.Create(
        a, b, c, a, b, c, a, b, c, a, b, c, a, b, c, a);
}
