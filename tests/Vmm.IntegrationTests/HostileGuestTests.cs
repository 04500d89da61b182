using System.Buffers.Binary;
using System.Globalization;
using System.Text.RegularExpressions;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.V4l2;
using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// The hostile-guest suite in a real VM (issue 9). The firmware guest in <c>mode=attack</c> attacks virtio-media
/// device A — its virtqueues, the virtio-pci transport (queue registers, reset, notifies, MSI-X, config space) and the
/// media commands — while bystander sessions stream on device B throughout and on A through the attacks that leave
/// it running. The guest checks every answer itself (anything else ends the run with exit code 15 or 16 and a FAIL
/// line); this test boots it once for all 27 attacks and checks what it printed and what the VMM logged: each attack's
/// answer, every bystander frame against the test-pattern generator, one log line per DEVICE_NEEDS_RESET and per
/// reset, and no exception.
/// <para>Time, natively: 8 to 14 s for the whole test, 100 000-notify storm included (the storm is half of it; the
/// 2-core PVM development host was shared with other jobs, load 6 to 9, 2026-12-03). In the lab (nested KVM under QEMU
/// TCG) the guest's 27 attacks take about 40 s with a 20 000-notify storm, which is what the test runs there, and
/// checking the bystander frames against the generator takes longer than that; hence the 10-minute timeout.</para>
/// </summary>
[Collection(VmCollection.Name)]
public sealed partial class HostileGuestTests(ITestOutputHelper output)
{
    private const int Width = 320, Height = 240;
    private const int MaxSessions = 8, MaxEvents = 16, MaxBuffers = 32;

    /// <summary>Every attack, in the order the guest runs them, with the answer the VMM promises.</summary>
    private static readonly (string Name, string Answer)[] Expected =
    [
        ("desc_loop", "links back to the first: DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised$"),
        ("desc_next", "next is 0x4000 \\(queue size 64\\): DEVICE_NEEDS_RESET, no used entry; A reset"),
        ("indirect", "INDIRECT_DESC (not offered|negotiated).*: DEVICE_NEEDS_RESET, no used entry; A reset"),
        ("buf_range", "outside guest RAM: DEVICE_NEEDS_RESET, no used entry; A reset"),
        ("buf_mmio", "A's own common configuration .*: DEVICE_NEEDS_RESET, no used entry; A reset"),
        ("huge_len", "a 1 MiB OPEN request: E2BIG, unread; 64 descriptors of 64 MiB \\(4 GiB in all\\): DEVICE_NEEDS_RESET, no used entry"),
        ("buf_overlap", "overlaps both request buffers: answered normally \\(216 bytes, 320x240\\), no DEVICE_NEEDS_RESET"),
        ("readonly_resp", "device-readable: used length 0, nothing written, no session opened; an 8-byte response buffer: EINVAL"),
        ("readable_after_writable", "followed by a device-readable one: DEVICE_NEEDS_RESET, no used entry"),
        ("avail_jump", "1000 entries ahead \\(queue size 64\\): DEVICE_NEEDS_RESET, no used entry"),
        ("head_range", "descriptor 0x7fff: DEVICE_NEEDS_RESET, no used entry"),
        ("event_small", "an 8-byte and a device-readable event buffer: both returned with used length 0, nothing written; the held events then arrived in order$"),
        ("event_ring", "outside guest RAM while frames stream: DEVICE_NEEDS_RESET at the first event, no used entry"),
        ("queue_reconfig", "ignored \\(every field read back unchanged\\); queue_select 9 reads as absent; no DEVICE_NEEDS_RESET$"),
        ("queue_config_bad", "DEVICE_NEEDS_RESET at DRIVER_OK each time; A reset"),
        ("reset_streaming", "status read 0 at once; re-initialised, the old session answered EINVAL and a new one streamed$"),
        ("notify_storm", "^\\d+ 16-bit notifies on both queues.*: absorbed in \\d+ ms; the next command was answered in \\d+ us; no DEVICE_NEEDS_RESET$"),
        ("msix", "stored while masked, vector control keeps the mask bit only, byte and 64-bit writes honoured; writes past the table and to the PBA ignored; enabled: the queue vector went pending while the function was masked and was delivered on unmask; 1000 mask flips; no DEVICE_NEEDS_RESET$"),
        ("pci_config", "^\\d+ read-only bytes kept .*; command and latency masked; .*PCI_CFG window: widths 1 and 2 honoured, width 3, misaligned, BAR 5 and offset 0x8000 ignored; config space equal to the snapshot after$"),
        ("bad_ioctl", "0xffffffff: ENOTTY; commands 0, 6, 0x7fffffff: ENOTTY; a 4-byte command: EINVAL; S_FMT with 16 of its 208 bytes: EINVAL$"),
        ("bad_session", "and the closed \\d+: EINVAL; CLOSE of them: ignored \\(used length 0\\); the attacker's own session still answered$"),
        ("mmap_foreign", "4 buffer offsets from another session: EINVAL; offsets 0xfffff000 and 0x123: EINVAL; flags 0x2: EINVAL; a mapped buffer with the other RW flag: EINVAL$"),
        ("munmap_unmapped", "and 0x1: EINVAL$"),
        ("busy", "REQBUFS\\(4\\), REQBUFS\\(0\\), CREATE_BUFS and S_FMT while the bystander owns the buffers: EBUSY; its QBUF and STREAMON without buffers: EINVAL$"),
        ("open_flood", $"^{MaxSessions - 1} OPENs with 1 session open: the next one EMFILE \\(max-sessions {MaxSessions}\\)"),
        ("buffer_flood", $"^REQBUFS\\(0xffffffff\\): {MaxBuffers} granted \\(max-buffers\\); CREATE_BUFS on the full queue: ENOBUFS; freed, CREATE_BUFS\\(0xffffffff\\): {MaxBuffers} created, then ENOBUFS"),
        ("event_starve", $"delivered in order once buffers came; {MaxBuffers} buffers streaming with max-events {MaxEvents} and no eventq buffer: {MaxEvents + 1} frames produced, the last found no room: the session's commands answered EIO and its ERROR event \\(EIO\\) came once buffers were posted"),
    ];

    /// <summary>Why device A needed a reset, in order: the VMM logs each once.</summary>
    private static readonly string[] NeedsResetReasons =
    [
        "virtio-media command queue: ChainTooLong",
        "virtio-media command queue: NextIndexOutOfRange",
        "virtio-media command queue: IndirectNotNegotiated",
        "virtio-media command queue: BufferOutsideMemory",
        "virtio-media command queue: BufferOutsideMemory",
        "virtio-media command queue: TotalLengthOverflow",
        "virtio-media command queue: ReadableAfterWritable",
        "virtio-media command queue: AvailIndexJump",
        "virtio-media command queue: HeadIndexOutOfRange",
        "virtio-media event queue: BufferOutsideMemory",
        "queue 0: RingOutsideMemory",
        "queue 0: RingMisaligned",
        "queue 0: InvalidSize",
        "queue 0: RingOutsideMemory",
    ];

    [VmFact(firmware: true)]
    [Trait("Category", "Media")]
    public void Every_attack_on_device_A_gets_its_promised_answer_and_no_bystander_loses_a_frame()
    {
        int storm = TestEnvironment.InLab ? 20_000 : 100_000;
        string a = $"test-pattern,width={Width},height={Height},fps=120,format=YUYV,max-sessions={MaxSessions},max-events={MaxEvents},max-buffers={MaxBuffers}";
        // B streams through every wait of the guest; at 60 fps its frames (each checked below against the generator,
        // about 0.5 ms apiece natively and 50 times that in the lab) stay in the low thousands even in the lab.
        string b = $"test-pattern,width={Width},height={Height},fps=60,format=YUYV";
        string cmdline = $"mode=attack width={Width} height={Height} format=YUYV a_sessions={MaxSessions} a_events={MaxEvents} " +
                         $"a_buffers={MaxBuffers} storm={storm} timeout_ms=10000";
        VmmRun run = VmmProcess.Run(
            ["run", "--kernel", TestEnvironment.RequireFirmware("media-stream.elf"), "--mem", "128", "--media", a, "--media", b,
             "--cmdline", cmdline],
            TimeSpan.FromMinutes(10));
        output.WriteLine(run.ToString());
        string[] lines = run.Stdout.Split('\n', StringSplitOptions.TrimEntries);
        output.WriteLine(lines.FirstOrDefault(l => l.StartsWith("TIMING ", StringComparison.Ordinal)) ?? "no TIMING line");

        Assert.False(run.TimedOut, "the hostile guest did not finish within 10 minutes");
        Assert.DoesNotContain(lines, l => l.StartsWith("FAIL", StringComparison.Ordinal));
        Assert.Equal(0, run.ExitCode);

        // Each attack once, in order, with its answer and a bystander that kept streaming.
        var attacks = lines.Select(l => AttackLine().Match(l)).Where(m => m.Success).ToList();
        Assert.Equal(Expected.Select(e => e.Name), attacks.Select(m => m.Groups["name"].Value));
        foreach (((string name, string answer), Match m) in Expected.Zip(attacks))
        {
            Assert.True(Regex.IsMatch(m.Groups["answer"].Value, answer), $"{name} answered: {m.Groups["answer"].Value}");
            Assert.True(int.Parse(m.Groups["frames"].Value, CultureInfo.InvariantCulture) >= 3, $"{name}: {m.Value}");
        }
        Match result = Assert.Single(lines.Select(l => ResultLine().Match(l)), m => m.Success);
        Assert.Equal(Expected.Length, Field(result, "attacks"));
        Assert.Equal(NeedsResetReasons.Length, Field(result, "needs_reset"));

        // Every bystander frame against the generator: its record covers contiguous sequences from 0.
        var bystanders = lines.Select(l => BystanderLine().Match(l)).Where(m => m.Success).ToList();
        Assert.Contains(bystanders, m => m.Groups["dev"].Value == "B" && Field(m, "frames") >= 3 * Expected.Length);
        int verified = 0;
        foreach (Match m in bystanders.Where(m => Field(m, "frames") > 0))
        {
            Assert.Equal(0, Field(m, "seq_first"));
            Assert.Equal(Field(m, "frames") - 1, Field(m, "seq_last"));
            uint combined = uint.Parse(m.Groups["combined"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            Assert.True(ExpectedCombined((uint)Field(m, "seq_last")) == combined, $"frames differ from the generator: {m.Value}");
            verified += Field(m, "frames");
        }
        Assert.Equal(Field(result, "bystander_frames"), verified);

        // The VMM: alive to the end, one line per DEVICE_NEEDS_RESET and per reset, no exception.
        Assert.DoesNotContain("Unhandled exception", run.Stderr);
        Assert.DoesNotContain("Exception:", run.Stderr);
        Assert.DoesNotContain("worker failed", run.Stderr);
        string[] log = run.Stderr.Split('\n');
        var needsReset = log.Select(l => NeedsResetLog().Match(l)).Where(m => m.Success).ToList();
        Assert.All(needsReset, m => Assert.Equal("01", m.Groups["slot"].Value));
        Assert.Equal(NeedsResetReasons, needsReset.Select(m => m.Groups["reason"].Value));
        Assert.Equal(Field(result, "resets"), log.Count(l => l.Contains("pci 00:01.0: reset by the driver", StringComparison.Ordinal)));
        Assert.Equal(NeedsResetReasons.Length, log.Count(l => l.Contains("reset by the driver after DEVICE_NEEDS_RESET", StringComparison.Ordinal)));
        Assert.DoesNotContain(log, l => l.Contains("pci 00:02.0: DEVICE_NEEDS_RESET", StringComparison.Ordinal) || l.Contains("pci 00:02.0: reset", StringComparison.Ordinal));
        Assert.Contains("guest wrote 0 to the debug-exit port", run.Stderr);
    }

    private static readonly Dictionary<uint, uint> SumBySequence = [];

    /// <summary>The guest's <c>combined</c> over frames 0..<paramref name="last"/> of a correct stream.</summary>
    private static uint ExpectedCombined(uint last)
    {
        uint combined = 0;
        Span<byte> record = stackalloc byte[8];
        for (uint seq = 0; seq <= last; seq++)
        {
            if (!SumBySequence.TryGetValue(seq, out uint sum))
            {
                sum = TestPatternImage.ExpectedChecksum(FourCc.Yuyv, Width, Height, seq, TestPatternControls.Default);
                SumBySequence[seq] = sum;
            }
            BinaryPrimitives.WriteUInt32LittleEndian(record, seq);
            BinaryPrimitives.WriteUInt32LittleEndian(record[4..], sum);
            combined = TestPatternImage.Checksum(record) ^ unchecked(combined * 0x9E3779B1u);
        }
        return combined;
    }

    private static int Field(Match m, string name) => int.Parse(m.Groups[name].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^ATTACK (?<name>\w+): (?<answer>.*); bystander (?<frames>\d+) frames, 0 lost$")]
    private static partial Regex AttackLine();

    [GeneratedRegex(@"^RESULT mode=attack attacks=(?<attacks>\d+) needs_reset=(?<needs_reset>\d+) resets=(?<resets>\d+) bystander_frames=(?<bystander_frames>\d+) lost=0$")]
    private static partial Regex ResultLine();

    [GeneratedRegex(@"^BYSTANDER dev=(?<dev>[AB]) session=\d+ frames=(?<frames>\d+) seq_first=(?<seq_first>\d+) seq_last=(?<seq_last>\d+) combined=(?<combined>[0-9a-f]{8})$")]
    private static partial Regex BystanderLine();

    [GeneratedRegex(@"vmm warn: pci 00:(?<slot>[0-9a-f]{2})\.0: DEVICE_NEEDS_RESET \((?<reason>[^)]*)\)")]
    private static partial Regex NeedsResetLog();
}
