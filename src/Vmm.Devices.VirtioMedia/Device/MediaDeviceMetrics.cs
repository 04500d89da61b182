using System.Diagnostics;
using System.Diagnostics.Metrics;
using Vmm.Core.Metrics;
using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// The virtio-media instruments on <see cref="VmmMeter"/> and one device's tags. Every measurement carries
/// <c>device</c> (<see cref="DeviceName"/>, unique in the process); events add <c>type</c> and commands
/// <c>command</c>. The tag pairs are built once per device, so recording allocates nothing. Disposing takes the
/// device out of the observed bytes-copied totals.
/// </summary>
public sealed class MediaDeviceMetrics : IDisposable
{
    public const string FramesName = "vmm.media.frames";
    public const string BytesDeliveredName = "vmm.media.bytes_delivered";
    public const string BytesCopiedName = "vmm.media.bytes_copied";
    public const string EventsName = "vmm.media.events";
    public const string CommandsName = "vmm.media.commands";
    public const string CommandLatencyName = "vmm.media.command.latency";

    /// <summary>Tag keys.</summary>
    public const string DeviceTag = "device", TypeTag = "type", CommandTag = "command";

    private static readonly Counter<long> Frames = VmmMeter.Meter.CreateCounter<long>(FramesName, "{frame}",
        "Frames completed: DQBUF events the device queued for the guest");

    private static readonly Counter<long> BytesDelivered = VmmMeter.Meter.CreateCounter<long>(BytesDeliveredName, "By",
        "Frame bytes handed to the guest (bytesused of each DQBUF, all planes)");

    // Devices whose bytes-copied total is observed; first, because the observable counter below reads it.
    private static readonly List<MediaDeviceMetrics> Live = [];

    // Observed rather than added to: a total that is meant to stay 0 would otherwise never be measured, and a watcher
    // that attaches to a running VMM would not see it at all.
    private static readonly ObservableCounter<long> BytesCopied = VmmMeter.Meter.CreateObservableCounter(BytesCopiedName,
        ObserveBytesCopied, "By",
        "Frame bytes the VMM copied. MMAP frames are never copied (0); only the host V4L2 proxy's bounce buffer for " +
        "SHARED_PAGES not in one run of guest RAM copies, and is counted here");

    private static readonly Counter<long> Events = VmmMeter.Meter.CreateCounter<long>(EventsName, "{event}",
        "Events written into eventq buffers for the guest, by type (dqbuf, event, error)");

    private static readonly Counter<long> Commands = VmmMeter.Meter.CreateCounter<long>(CommandsName, "{command}",
        "Commands answered, by command (open, close, ioctl, mmap, munmap, other)");

    private static readonly Histogram<double> CommandLatency = VmmMeter.Meter.CreateHistogram<double>(CommandLatencyName, "us",
        "Time from taking a command off the commandq to putting its answer in the used ring");

    // Indexed by the wire values: VirtioMediaEventType 0..2, VirtioMediaCommand 1..5; the last entry is the fallback.
    private static readonly string[] EventTypeNames = ["error", "dqbuf", "event", "other"];
    private static readonly string[] CommandNames = ["other", "open", "close", "ioctl", "mmap", "munmap", "other"];

    private static int _lastDevice = -1;

    private readonly KeyValuePair<string, object?> _device;
    private readonly KeyValuePair<string, object?>[] _eventTypes;
    private readonly KeyValuePair<string, object?>[] _commands;
    private long _bytesCopied;

    /// <summary>Tags for a device named <paramref name="deviceName"/> (the <c>device</c> tag's value).</summary>
    public MediaDeviceMetrics(string deviceName)
    {
        DeviceName = deviceName;
        _device = new(DeviceTag, deviceName);
        _eventTypes = Array.ConvertAll(EventTypeNames, n => new KeyValuePair<string, object?>(TypeTag, n));
        _commands = Array.ConvertAll(CommandNames, n => new KeyValuePair<string, object?>(CommandTag, n));
        lock (Live)
        {
            Live.Add(this);
        }
    }

    /// <summary>The next free name, <c>media0</c>, <c>media1</c>, … in creation order (the CLI creates devices in
    /// <c>--media</c> order).</summary>
    public static string NextDeviceName() => $"media{Interlocked.Increment(ref _lastDevice)}";

    /// <summary>The <c>device</c> tag's value.</summary>
    public string DeviceName { get; }

    /// <summary>A DQBUF event was queued for the guest, with <paramref name="bytesUsed"/> bytes of frame.</summary>
    public void FrameCompleted(long bytesUsed)
    {
        Frames.Add(1, _device);
        BytesDelivered.Add(bytesUsed, _device);
    }

    /// <summary>The device copied <paramref name="bytes"/> frame bytes (a fallback; zero-copy paths never call this).</summary>
    public void FrameBytesCopied(long bytes) => Interlocked.Add(ref _bytesCopied, bytes);

    /// <summary>Frame bytes this device copied so far (what <c>vmm.media.bytes_copied</c> reports for it).</summary>
    public long BytesCopiedTotal => Interlocked.Read(ref _bytesCopied);

    /// <summary>An event of wire type <paramref name="type"/> went into an eventq buffer.</summary>
    public void EventDelivered(uint type) =>
        Events.Add(1, _device, _eventTypes[Math.Min(type, (uint)_eventTypes.Length - 1)]);

    /// <summary>Command <paramref name="command"/> (wire value; anything else counts as other) was answered;
    /// <paramref name="poppedAt"/> is the <see cref="Stopwatch"/> timestamp at which it was taken off the queue.</summary>
    public void CommandAnswered(uint command, long poppedAt)
    {
        KeyValuePair<string, object?> kind = _commands[Math.Min(command, (uint)_commands.Length - 1)];
        Commands.Add(1, _device, kind);
        CommandLatency.Record(Stopwatch.GetElapsedTime(poppedAt).TotalMicroseconds, _device, kind);
    }

    public void Dispose()
    {
        lock (Live)
        {
            Live.Remove(this);
        }
    }

    // Runs when a listener collects (dotnet-counters: once per refresh interval), not on a hot path.
    private static Measurement<long>[] ObserveBytesCopied()
    {
        lock (Live)
        {
            var totals = new Measurement<long>[Live.Count];
            for (int i = 0; i < totals.Length; i++)
            {
                totals[i] = new Measurement<long>(Live[i].BytesCopiedTotal, Live[i]._device);
            }
            return totals;
        }
    }
}
