using System.Diagnostics.Metrics;
using Vmm.Core.Metrics;
using Vmm.Devices.VirtioMedia.Device;

namespace Vmm.PerfLab.Measurement;

/// <summary>
/// Reads one device's counters from the VMM's own meter (what <c>dotnet-counters</c> shows), so the lab's figures
/// and a user's watch come from the same instruments: frames, bytes delivered and copied, and each command's
/// latency. Start it before the window, <see cref="Stop"/> after; only measurements tagged with the device count.
/// </summary>
internal sealed class MediaCounters : IDisposable
{
    private readonly string _device;
    private readonly MeterListener _listener = new();
    private readonly List<double> _latencies = new(1 << 14);
    private long _frames, _bytesDelivered, _copiedTotal, _copiedAtStart;
    private bool _running = true;

    public MediaCounters(string device)
    {
        _device = device;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == VmmMeter.Name && instrument.Name.StartsWith("vmm.media.", StringComparison.Ordinal))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>(OnLong);
        _listener.SetMeasurementEventCallback<double>(OnDouble);
        _listener.Start();
        _listener.RecordObservableInstruments(); // the copied total is cumulative: note where it starts
        _copiedAtStart = _copiedTotal;
    }

    public long Frames => Interlocked.Read(ref _frames);
    public long BytesDelivered => Interlocked.Read(ref _bytesDelivered);
    public long BytesCopied { get; private set; }
    public List<double> CommandLatenciesUs => _latencies;

    public void Stop()
    {
        _listener.RecordObservableInstruments();
        BytesCopied = _copiedTotal - _copiedAtStart;
        _running = false;
    }

    private bool Mine(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (KeyValuePair<string, object?> t in tags)
        {
            if (t.Key == MediaDeviceMetrics.DeviceTag)
            {
                return _running && (t.Value as string) == _device;
            }
        }
        return false;
    }

    private void OnLong(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (!Mine(tags))
        {
            return;
        }
        switch (instrument.Name)
        {
            case MediaDeviceMetrics.FramesName:
                Interlocked.Add(ref _frames, value);
                break;
            case MediaDeviceMetrics.BytesDeliveredName:
                Interlocked.Add(ref _bytesDelivered, value);
                break;
            case MediaDeviceMetrics.BytesCopiedName:
                _copiedTotal = value; // observed: the device's running total
                break;
        }
    }

    private void OnDouble(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (instrument.Name == MediaDeviceMetrics.CommandLatencyName && Mine(tags))
        {
            lock (_latencies)
            {
                _latencies.Add(value);
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
