using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.VirtioMedia.Backends;
using Vmm.Devices.VirtioMedia.Buffers;
using Vmm.Devices.VirtioMedia.Protocol;

namespace Vmm.Devices.VirtioMedia.Device;

/// <summary>
/// The virtio-media device (virtio type 48): config space (device_caps, device_type, card), commandq (0) and
/// eventq (1), shared-memory region 0 for MMAP buffers. Commands are executed by <see cref="CommandProcessor"/>,
/// frames paced by <see cref="FrameClock"/>, events held in <see cref="PendingEvents"/> until the driver posts
/// eventq buffers. Transport- and hypervisor-independent.
/// </summary>
public sealed partial class VirtioMediaDevice : IVirtioDevice
{
    /// <summary>Queue sizes (crosvm uses 256 for both).</summary>
    public const ushort QueueSize = 256;

    private static readonly ushort[] QueueSizes = [QueueSize, QueueSize];

    private readonly IMediaBackend _backend;
    private readonly SharedMemoryRegion? _shm;
    private readonly SharedMemoryRegion[] _regions;
    private readonly byte[] _config = new byte[VirtioMediaWire.ConfigSize];
    private readonly FrameClock _clock;
    private readonly EventLoop _loop;
    private readonly ILogger _logger;
    private GuestMemory? _memory;
    private bool _disposed;

    /// <summary>Creates the device around <paramref name="backend"/> (owned and disposed by the device).</summary>
    /// <param name="backend">The video source.</param>
    /// <param name="sharedMemorySize">Size of region 0 (page multiple, ≤ 4 GiB), or 0 for no region (MMAP then
    /// fails with ENOTTY, as the protocol prescribes). A backend with <see cref="IMediaBackend.MapsHostBuffers"/>
    /// gets a host-mapped region (address space for the host driver's buffers), any other a memfd.</param>
    /// <param name="limits">What a guest may hold of the device; <see cref="MediaDeviceLimits.Default"/> when null.</param>
    /// <param name="logger">Where the device logs its faults (none when null).</param>
    public VirtioMediaDevice(IMediaBackend backend, ulong sharedMemorySize, MediaDeviceLimits? limits = null, ILogger? logger = null)
    {
        _backend = backend;
        _logger = logger ?? NullLogger.Instance;
        if (sharedMemorySize > 1UL << 32)
        {
            throw new ArgumentOutOfRangeException(nameof(sharedMemorySize), "mem_offset is 32-bit: region 0 is at most 4 GiB");
        }
        if (sharedMemorySize != 0)
        {
            _shm = backend.MapsHostBuffers
                ? SharedMemoryRegion.CreateForHostMappings(VirtioMediaWire.ShmIdMmap, sharedMemorySize)
                : new SharedMemoryRegion(VirtioMediaWire.ShmIdMmap, sharedMemorySize, "virtio-media-shm0");
            _regions = [_shm];
        }
        else
        {
            _regions = [];
        }
        _loop = new EventLoop("virtio-media");
        Processor = new CommandProcessor(backend, _shm, _shm is { IsBacked: true } ? new ShmAllocator(_shm) : null,
            () => Volatile.Read(ref _memory), WakeClock, _loop, limits, logger: _logger);
        _request = new byte[Processor.Limits.MaxCommandBytes];
        _response = new byte[Processor.Limits.MaxCommandBytes];
        _clock = new FrameClock(Processor.Sessions, OnClockFaulted, _logger);
        Processor.Events.Added += OnEventAdded;

        var config = new VirtioMediaConfig { DeviceCaps = backend.DeviceCaps & ~V4l2.V4l2Const.CapDeviceCaps, DeviceType = 0 };
        MemoryMarshal.Write(_config, in config);
        V4l2.V4l2Text.Write(_config.AsSpan(8, VirtioMediaWire.CardNameSize), backend.Card);
    }

    /// <summary>Builds a device from a backend's validated options (the backend starts here: a host node is opened
    /// and checked). Throws <see cref="MediaBackendException"/> with one line when it cannot.</summary>
    /// <param name="options">The backend's validated options.</param>
    /// <param name="logger">Where the device and its backend log (none when null).</param>
    public static VirtioMediaDevice Create(IMediaBackendOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        IMediaBackend backend = options.CreateBackend(logger);
        try
        {
            return new VirtioMediaDevice(backend, options.SharedMemorySize, options.Limits, logger);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Builds a device from the CLI option string (<see cref="MediaBackendSpecs"/>), e.g.
    /// <c>test-pattern,width=1280,height=720,fps=30,format=NV12</c> or <c>/dev/video0</c>. On failure returns false
    /// with a one-line <paramref name="error"/>.
    /// </summary>
    public static bool TryCreate(string option, [NotNullWhen(true)] out VirtioMediaDevice? device, [NotNullWhen(false)] out string? error)
        => TryCreate(option, null, out device, out error);

    /// <inheritdoc cref="TryCreate(string, out VirtioMediaDevice?, out string?)"/>
    /// <param name="logger">Where the device and its backend log (none when null).</param>
    public static bool TryCreate(string option, ILogger? logger, [NotNullWhen(true)] out VirtioMediaDevice? device, [NotNullWhen(false)] out string? error)
    {
        device = null;
        if (!MediaBackendSpecs.TryParse(option, out IMediaBackendOptions? options, out error))
        {
            return false;
        }
        try
        {
            device = Create(options, logger);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or Core.Interop.ErrnoException or MediaBackendException)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>The command executor (sessions, mappings, pending events).</summary>
    public CommandProcessor Processor { get; }

    public IMediaBackend Backend => _backend;

    /// <summary>Sees every frame the backend completes in an MMAP buffer, before the guest gets it (the test-pattern
    /// camera reports its frames; a host proxy's frames are the host driver's and are not reported). Null (the
    /// default) costs one check per frame. Set it before the guest opens a session.</summary>
    public Frames.IFrameObserver? FrameObserver
    {
        get => Processor.FrameObserver;
        set => Processor.FrameObserver = value;
    }

    /// <summary>What the device records on the VMM's meter; <see cref="MediaDeviceMetrics.DeviceName"/> is its
    /// <c>device</c> tag.</summary>
    public MediaDeviceMetrics Metrics => Processor.Metrics;

    /// <summary>Region 0, or null.</summary>
    public SharedMemoryRegion? SharedMemory => _shm;

    public VirtioDeviceType DeviceType => VirtioDeviceType.Media;

    public ReadOnlySpan<ushort> QueueMaxSizes => QueueSizes;

    /// <summary>No device-specific features; EVENT_IDX is supported by the queue implementation.</summary>
    public ulong AvailableFeatures => VirtioFeatures.EventIdx;

    public IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions => _regions;

    /// <summary>The guest RAM used for SHARED_PAGES buffers (set by <see cref="Activate"/>, or by the testbed).</summary>
    public GuestMemory? GuestMemory => Volatile.Read(ref _memory);

    public void ReadConfig(uint offset, Span<byte> data)
    {
        data.Clear();
        if (offset >= _config.Length)
        {
            return;
        }
        ReadOnlySpan<byte> src = _config.AsSpan((int)offset);
        src[..Math.Min(src.Length, data.Length)].CopyTo(data);
    }

    /// <summary>The configuration space is read-only.</summary>
    public void WriteConfig(uint offset, ReadOnlySpan<byte> data)
    {
    }

    private void WakeClock(long deadline) => _clock.Wake(deadline);

    /// <summary>The frame clock, for tests.</summary>
    internal FrameClock Clock => _clock;

    private void OnClockFaulted(string reason)
    {
        if (Volatile.Read(ref _activation) is { } a)
        {
            Fault(a, reason);
        }
    }

    private void OnEventAdded() => OnEventAddedCore();

    partial void OnEventAddedCore();

    /// <summary>Stops the frame clock and closes every session.</summary>
    private void StopAll()
    {
        _clock.Stop(TimeSpan.FromSeconds(2));
        Processor.CloseAll();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Reset();
        _clock.Dispose();
        _backend.Dispose();
        _loop.Dispose();
        _shm?.Dispose();
        Metrics.Dispose();
    }
}
