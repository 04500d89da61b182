using System.Buffers.Binary;
using System.Globalization;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;

namespace Vmm.Cli.Demo;

/// <summary>
/// What the streaming firmware (firmware/, <c>media-stream.elf</c>) printed, parsed from its console lines, and the
/// check of every frame against the test-pattern generator. The firmware prints a CRC-32C per frame for a few frames
/// and one <c>combined</c> value over all (sequence, checksum) pairs, so when no frame was dropped the host verifies
/// every frame from one line.
/// </summary>
internal sealed class StreamReport
{
    private readonly List<(uint Sequence, uint Sum)> _frames = [];

    public int Width { get; private set; }
    public int Height { get; private set; }
    public string? Format { get; private set; }
    public int ResultFrames { get; private set; }
    public double GuestFps { get; private set; }
    public uint? SequenceFirst { get; private set; }
    public uint? SequenceLast { get; private set; }
    public uint Gaps { get; private set; }
    public uint? Combined { get; private set; }
    public bool HasResult { get; private set; }
    public IReadOnlyList<(uint Sequence, uint Sum)> PrintedFrames => _frames;

    /// <summary>Feeds one console line (others are ignored).</summary>
    public void Observe(string line)
    {
        if (line.StartsWith("FRAME ", StringComparison.Ordinal))
        {
            Dictionary<string, string> f = Fields(line);
            if (f.TryGetValue("seq", out string? seq) && f.TryGetValue("sum", out string? sum) &&
                uint.TryParse(seq, CultureInfo.InvariantCulture, out uint s) &&
                ulong.TryParse(sum, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong c))
            {
                _frames.Add((s, (uint)c));
            }
        }
        else if (line.StartsWith("STATS ", StringComparison.Ordinal))
        {
            Dictionary<string, string> f = Fields(line);
            SequenceFirst = ParseU32(f, "seq_first");
            SequenceLast = ParseU32(f, "seq_last");
            Gaps = ParseU32(f, "seq_gaps") ?? 0;
            if (f.TryGetValue("combined", out string? combined) &&
                uint.TryParse(combined, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint v))
            {
                Combined = v;
            }
        }
        else if (line.StartsWith("RESULT ", StringComparison.Ordinal))
        {
            Dictionary<string, string> f = Fields(line);
            HasResult = true;
            ResultFrames = (int)(ParseU32(f, "frames") ?? 0);
            Width = (int)(ParseU32(f, "width") ?? 0);
            Height = (int)(ParseU32(f, "height") ?? 0);
            Format = f.GetValueOrDefault("format");
            GuestFps = f.TryGetValue("fps", out string? fps) && double.TryParse(fps, CultureInfo.InvariantCulture, out double d) ? d : 0;
        }
    }

    /// <summary>Checks the printed frames and, when the sequence has no gaps, every frame through the combined value.</summary>
    /// <returns>How many frames were verified and how many did not match.</returns>
    public (int Checked, int Mismatches) Verify(uint fourcc, TestPatternControls controls)
    {
        int mismatches = 0;
        foreach ((uint seq, uint sum) in _frames)
        {
            if (TestPatternImage.ExpectedChecksum(fourcc, Width, Height, seq, controls) != sum)
            {
                mismatches++;
            }
        }
        if (Gaps != 0 || SequenceFirst is not { } first || SequenceLast is not { } last || Combined is not { } combined)
        {
            return (_frames.Count, mismatches);
        }
        uint expected = 0;
        Span<byte> record = stackalloc byte[8];
        for (uint seq = first; ; seq++)
        {
            uint sum = TestPatternImage.ExpectedChecksum(fourcc, Width, Height, seq, controls);
            BinaryPrimitives.WriteUInt32LittleEndian(record, seq);
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], sum);
            expected = TestPatternImage.Checksum(record) ^ unchecked(expected * 0x9E3779B1u);
            if (seq == last)
            {
                break;
            }
        }
        int all = (int)(last - first + 1);
        return expected == combined ? (all, mismatches) : (all, Math.Max(mismatches, 1));
    }

    private static uint? ParseU32(Dictionary<string, string> f, string key) =>
        f.TryGetValue(key, out string? v) && uint.TryParse(v, CultureInfo.InvariantCulture, out uint r) ? r : null;

    private static Dictionary<string, string> Fields(string line)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string token in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = token.IndexOf('=');
            if (eq > 0)
            {
                d[token[..eq]] = token[(eq + 1)..];
            }
        }
        return d;
    }
}
