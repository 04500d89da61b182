using System.Numerics;
using System.Runtime.InteropServices;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Backends.TestPattern;

/// <summary>The camera's controls that affect the picture.</summary>
/// <param name="Brightness">Added to every R, G, B of bars and box; −128 … 127, default 0.</param>
/// <param name="Contrast">Gain around mid-grey, 128 = 1.0; 0 … 255, default 128.</param>
/// <param name="Pattern">0 = colour bars + moving box, 1 = colour bars, 2 = solid grey. The frame counter is drawn
/// in every pattern.</param>
public readonly record struct TestPatternControls(int Brightness, int Contrast, int Pattern)
{
    public static TestPatternControls Default => new(0, 128, 0);
}

/// <summary>The memory planes one frame is written to (1 to 3 of them).</summary>
public ref struct FrameDestination
{
    public PlaneDestination Plane0;
    public PlaneDestination Plane1;
    public PlaneDestination Plane2;

    public void Write(int plane, long offset, ReadOnlySpan<byte> data)
    {
        switch (plane)
        {
            case 0: Plane0.Write(offset, data); break;
            case 1: Plane1.Write(offset, data); break;
            default: Plane2.Write(offset, data); break;
        }
    }
}

/// <summary>
/// The test-pattern picture. Definition (width W and height H are even; all x/y boundaries are even so that 4:2:2
/// and 4:2:0 chroma never straddles two colours):
/// <list type="bullet">
/// <item>Eight vertical bars; bar i starts at x = ⌊i·W/8⌋ rounded down to even. Colours (R,G,B): white, yellow, cyan,
/// green, magenta, red, blue at level 192 (0xC0), then black.</item>
/// <item>Pattern 0 adds a white (255) square box of side B = clamp(⌊H/8⌋ even, 16, …) at
/// x = (8·n mod (W−B+1)) even, y = C + ((4·n mod (H−B−C+1)) even), n being the frame number.</item>
/// <item>Pattern 2 replaces the bars with grey 128.</item>
/// <item>Brightness b and contrast c map every bar/box component v to clamp((v−128)·c/128 + 128 + b, 0, 255).</item>
/// <item>The frame counter: the top C = clamp(⌊W/32⌋ even, 2, 16) rows hold 32 C×C cells, cell i (from the left)
/// white (255) if bit 31−i of n is set, black otherwise; unaffected by the controls.</item>
/// <item>YUV formats use BT.601 limited range (Y = ((66R+129G+25B+128)≫8)+16, U = ((−38R−74G+112B+128)≫8)+128,
/// V = ((112R−94G−18B+128)≫8)+128); chroma is taken from the top-left pixel of each 2×1 / 2×2 block.</item>
/// </list>
/// Frames are verified with <see cref="Checksum(ReadOnlySpan{byte})"/>: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78,
/// initial value and final XOR 0xFFFFFFFF) over the memory planes' image bytes in plane order.
/// </summary>
public static class TestPatternImage
{
    private static readonly (byte R, byte G, byte B)[] BarColours =
    [
        (192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192), (0, 0, 0),
    ];

    /// <summary>Side of a frame-counter cell.</summary>
    public static int CounterCell(int width) => Math.Clamp((width / 32) & ~1, 2, 16);

    /// <summary>Side of the moving box.</summary>
    public static int BoxSize(int width, int height)
    {
        int c = CounterCell(width);
        return Math.Max(2, Math.Min(Math.Max(16, (height / 8) & ~1), Math.Min(width & ~1, (height - c) & ~1)));
    }

    /// <summary>Top-left corner of the moving box in frame <paramref name="frame"/>.</summary>
    public static (int X, int Y) BoxPosition(int width, int height, uint frame)
    {
        int c = CounterCell(width);
        int b = BoxSize(width, height);
        int x = (int)((8UL * frame) % (ulong)(width - b + 1)) & ~1;
        int y = c + ((int)((4UL * frame) % (ulong)(height - b - c + 1)) & ~1);
        return (x, y);
    }

    /// <summary>Start column of bar <paramref name="bar"/> (0…8; 8 gives the width).</summary>
    public static int BarStart(int width, int bar) => bar >= 8 ? width : (bar * width / 8) & ~1;

    /// <summary>The R, G, B value of pixel (x, y) — the definition of the picture, used by verifiers.</summary>
    public static (byte R, byte G, byte B) RgbAt(int width, int height, uint frame, TestPatternControls controls, int x, int y)
    {
        int c = CounterCell(width);
        if (y < c && x < 32 * c)
        {
            byte bit = (byte)(((frame >> (31 - x / c)) & 1) != 0 ? 255 : 0);
            return (bit, bit, bit);
        }
        (byte R, byte G, byte B) colour;
        if (controls.Pattern == 2)
        {
            colour = (128, 128, 128);
        }
        else
        {
            int bar = 7;
            while (bar > 0 && x < BarStart(width, bar))
            {
                bar--;
            }
            colour = BarColours[bar];
            if (controls.Pattern == 0)
            {
                int b = BoxSize(width, height);
                (int bx, int by) = BoxPosition(width, height, frame);
                if (x >= bx && x < bx + b && y >= by && y < by + b)
                {
                    colour = (255, 255, 255);
                }
            }
        }
        return (Adjust(colour.R, controls), Adjust(colour.G, controls), Adjust(colour.B, controls));
    }

    /// <summary>Brightness/contrast on one component.</summary>
    public static byte Adjust(byte v, TestPatternControls controls) =>
        (byte)Math.Clamp((v - 128) * controls.Contrast / 128 + 128 + controls.Brightness, 0, 255);

    /// <summary>BT.601 limited-range conversion.</summary>
    public static (byte Y, byte U, byte V) ToYuv(byte r, byte g, byte b) => (
        (byte)(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16),
        (byte)(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128),
        (byte)(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128));

    /// <summary>CRC-32C of one contiguous image (<see cref="FrameChecksum"/>).</summary>
    public static uint Checksum(ReadOnlySpan<byte> image) => FrameChecksum.Compute(image);

    /// <summary>CRC-32C over several memory planes, in order.</summary>
    public static uint Checksum(ReadOnlySpan<byte> plane0, ReadOnlySpan<byte> plane1, ReadOnlySpan<byte> plane2) =>
        FrameChecksum.Compute(plane0, plane1, plane2);

    /// <summary>The checksum a correct frame <paramref name="frame"/> has. Renders into temporary arrays: for tests
    /// and verifiers, not for the streaming path.</summary>
    public static uint ExpectedChecksum(uint fourcc, int width, int height, uint frame, TestPatternControls controls)
    {
        byte[][] planes = Render(fourcc, width, height, frame, controls);
        return Checksum(planes[0], planes[1], planes[2]);
    }

    /// <summary>Frame <paramref name="frame"/> rendered into three new arrays, one per memory plane (empty past the
    /// format's planes), tightly packed. For tests and verifiers, not for the streaming path.</summary>
    public static byte[][] Render(uint fourcc, int width, int height, uint frame, TestPatternControls controls)
    {
        PixelFormatInfo info = PixelFormats.Find(fourcc) ?? throw new ArgumentException($"unsupported format {FourCc.ToString(fourcc)}");
        byte[][] planes = new byte[3][];
        for (int p = 0; p < 3; p++)
        {
            planes[p] = new byte[p < info.MemoryPlanes ? info.SizeImage(p, (uint)width, (uint)height) : 0];
        }
        var dst = new FrameDestination
        {
            Plane0 = new PlaneDestination(planes[0]),
            Plane1 = new PlaneDestination(planes[1]),
            Plane2 = new PlaneDestination(planes[2]),
        };
        new TestPatternRenderer().Render(info, width, height, frame, controls, ref dst);
        return planes;
    }

    /// <summary>Reads the frame counter back from luma (YUV formats, plane 0) or RGB bytes: the centre pixel of each
    /// of the 32 cells is compared with mid-level.</summary>
    public static uint ReadFrameCounter(uint fourcc, ReadOnlySpan<byte> plane0, int width)
    {
        int c = CounterCell(width);
        uint n = 0;
        for (int i = 0; i < 32; i++)
        {
            int x = i * c + c / 2, y = c / 2;
            int value = fourcc switch
            {
                FourCc.Yuyv => plane0[y * width * 2 + x * 2],
                FourCc.Rgb24 or FourCc.Bgr24 => plane0[y * width * 3 + x * 3],
                _ => plane0[y * width + x],
            };
            n = n << 1 | (value > 128 ? 1u : 0u);
        }
        return n;
    }
}

/// <summary>
/// Renders <see cref="TestPatternImage"/> frames. Each frame has only three kinds of rows (plain, box, counter); each is
/// built once per frame with vector fills in a small per-renderer row scratch, then written row by row straight into
/// the destination planes. Not thread-safe: one renderer per producing thread/session. Allocation-free after the
/// first frame of a given width.
/// </summary>
public sealed class TestPatternRenderer
{
    private const int RowKinds = 3; // plain, box, counter
    private byte[] _rows = [];
    private int _rowStride;

    private readonly (int X0, int X1, byte R, byte G, byte B)[] _runs = new (int, int, byte, byte, byte)[64];

    /// <summary>Writes frame <paramref name="frame"/> into <paramref name="destination"/>.</summary>
    public void Render(PixelFormatInfo format, int width, int height, uint frame, TestPatternControls controls, ref FrameDestination destination)
    {
        if (width < 2 || height < 2 || (width & 1) != 0 || (height & 1) != 0)
        {
            throw new ArgumentException("frame dimensions must be even and at least 2");
        }
        // Row scratch: per kind, up to 3 component rows of at most 3·width bytes.
        int stride = 3 * width;
        if (_rowStride < stride)
        {
            _rows = new byte[RowKinds * 3 * stride];
            _rowStride = stride;
        }
        int c = TestPatternImage.CounterCell(width);
        int box = TestPatternImage.BoxSize(width, height);
        (int bx, int by) = TestPatternImage.BoxPosition(width, height, frame);
        bool hasBox = controls.Pattern == 0;

        for (int kind = 0; kind < RowKinds; kind++)
        {
            int runCount = BuildRuns(kind, width, frame, controls, c, bx, box);
            BuildRowTemplates(format, width, kind, runCount);
        }

        uint w = (uint)width;
        switch (format.FourCc)
        {
            case FourCc.Yuyv:
            case FourCc.Rgb24:
            case FourCc.Bgr24:
            {
                int bpl = (int)format.BytesPerLine(0, w);
                for (int y = 0; y < height; y++)
                {
                    destination.Write(0, (long)y * bpl, Row(RowKind(y, c, hasBox, by, box), 0, bpl));
                }
                break;
            }
            case FourCc.Nv12:
            case FourCc.Nv12M:
            {
                bool split = format.FourCc == FourCc.Nv12M;
                long chromaBase = split ? 0 : (long)width * height;
                for (int y = 0; y < height; y++)
                {
                    destination.Write(0, (long)y * width, Row(RowKind(y, c, hasBox, by, box), 0, width));
                }
                for (int j = 0; j < height / 2; j++)
                {
                    destination.Write(split ? 1 : 0, chromaBase + (long)j * width, Row(RowKind(2 * j, c, hasBox, by, box), 1, width));
                }
                break;
            }
            case FourCc.Yu12:
            case FourCc.Yu12M:
            {
                bool split = format.FourCc == FourCc.Yu12M;
                int cw = width / 2;
                long uBase = split ? 0 : (long)width * height;
                long vBase = split ? 0 : uBase + (long)cw * (height / 2);
                for (int y = 0; y < height; y++)
                {
                    destination.Write(0, (long)y * width, Row(RowKind(y, c, hasBox, by, box), 0, width));
                }
                for (int j = 0; j < height / 2; j++)
                {
                    int kind = RowKind(2 * j, c, hasBox, by, box);
                    destination.Write(split ? 1 : 0, uBase + (long)j * cw, Row(kind, 1, cw));
                    destination.Write(split ? 2 : 0, vBase + (long)j * cw, Row(kind, 2, cw));
                }
                break;
            }
            default:
                throw new ArgumentException($"unsupported format {FourCc.ToString(format.FourCc)}");
        }
    }

    private static int RowKind(int y, int counterRows, bool hasBox, int boxY, int boxSize) =>
        y < counterRows ? 2 : hasBox && y >= boxY && y < boxY + boxSize ? 1 : 0;

    private ReadOnlySpan<byte> Row(int kind, int component, int length) =>
        _rows.AsSpan((kind * 3 + component) * _rowStride, length);

    // Describes one row kind as runs of constant colour, left to right, all boundaries even.
    private int BuildRuns(int kind, int width, uint frame, TestPatternControls controls, int cell, int boxX, int box)
    {
        int n = 0;
        int x = 0;
        if (kind == 2)
        {
            for (int i = 0; i < 32; i++)
            {
                byte v = (byte)(((frame >> (31 - i)) & 1) != 0 ? 255 : 0);
                _runs[n++] = (i * cell, (i + 1) * cell, v, v, v);
            }
            x = 32 * cell;
        }
        if (controls.Pattern == 2)
        {
            byte g = TestPatternImage.Adjust(128, controls);
            if (x < width)
            {
                _runs[n++] = (x, width, g, g, g);
            }
            return n;
        }
        (byte R, byte G, byte B) white = (TestPatternImage.Adjust(255, controls), TestPatternImage.Adjust(255, controls), TestPatternImage.Adjust(255, controls));
        for (int bar = 0; bar < 8; bar++)
        {
            int x0 = Math.Max(x, TestPatternImage.BarStart(width, bar));
            int x1 = TestPatternImage.BarStart(width, bar + 1);
            if (x0 >= x1)
            {
                continue;
            }
            (byte r, byte g, byte b) = BarColour(bar, controls);
            if (kind == 1)
            {
                // Box row: split the bar around [boxX, boxX + box).
                int b0 = Math.Clamp(boxX, x0, x1), b1 = Math.Clamp(boxX + box, x0, x1);
                if (x0 < b0) { _runs[n++] = (x0, b0, r, g, b); }
                if (b0 < b1) { _runs[n++] = (b0, b1, white.R, white.G, white.B); }
                if (b1 < x1) { _runs[n++] = (b1, x1, r, g, b); }
            }
            else
            {
                _runs[n++] = (x0, x1, r, g, b);
            }
        }
        return n;
    }

    private static (byte R, byte G, byte B) BarColour(int bar, TestPatternControls controls)
    {
        (byte r, byte g, byte b) = bar switch
        {
            0 => ((byte)192, (byte)192, (byte)192),
            1 => ((byte)192, (byte)192, (byte)0),
            2 => ((byte)0, (byte)192, (byte)192),
            3 => ((byte)0, (byte)192, (byte)0),
            4 => ((byte)192, (byte)0, (byte)192),
            5 => ((byte)192, (byte)0, (byte)0),
            6 => ((byte)0, (byte)0, (byte)192),
            _ => ((byte)0, (byte)0, (byte)0),
        };
        return (TestPatternImage.Adjust(r, controls), TestPatternImage.Adjust(g, controls), TestPatternImage.Adjust(b, controls));
    }

    private void BuildRowTemplates(PixelFormatInfo format, int width, int kind, int runCount)
    {
        Span<byte> c0 = _rows.AsSpan((kind * 3 + 0) * _rowStride, _rowStride);
        Span<byte> c1 = _rows.AsSpan((kind * 3 + 1) * _rowStride, _rowStride);
        Span<byte> c2 = _rows.AsSpan((kind * 3 + 2) * _rowStride, _rowStride);
        for (int i = 0; i < runCount; i++)
        {
            (int x0, int x1, byte r, byte g, byte b) = _runs[i];
            int len = x1 - x0;
            switch (format.FourCc)
            {
                case FourCc.Rgb24:
                    PatternFill.Fill3(c0.Slice(3 * x0, 3 * len), r, g, b);
                    break;
                case FourCc.Bgr24:
                    PatternFill.Fill3(c0.Slice(3 * x0, 3 * len), b, g, r);
                    break;
                case FourCc.Yuyv:
                {
                    (byte y, byte u, byte v) = TestPatternImage.ToYuv(r, g, b);
                    PatternFill.Fill4(c0.Slice(2 * x0, 2 * len), y, u, y, v);
                    break;
                }
                case FourCc.Nv12:
                case FourCc.Nv12M:
                {
                    (byte y, byte u, byte v) = TestPatternImage.ToYuv(r, g, b);
                    PatternFill.Fill1(c0.Slice(x0, len), y);
                    PatternFill.Fill2(c1.Slice(x0, len), u, v);
                    break;
                }
                default: // YU12, YM12
                {
                    (byte y, byte u, byte v) = TestPatternImage.ToYuv(r, g, b);
                    PatternFill.Fill1(c0.Slice(x0, len), y);
                    PatternFill.Fill1(c1.Slice(x0 / 2, len / 2), u);
                    PatternFill.Fill1(c2.Slice(x0 / 2, len / 2), v);
                    break;
                }
            }
        }
    }
}
