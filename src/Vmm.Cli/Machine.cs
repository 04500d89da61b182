using Vmm.Cli.Configuration;
using Vmm.Cli.Diagnostics;
using Vmm.Cli.Terminal;
using Vmm.Cli.Platforms;
using Vmm.Core.Arch;
using Vmm.Core.Boot;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.Legacy.Serial;
using Vmm.Devices.Pci;
using Vmm.Devices.Pci.Virtio;
using Vmm.Devices.Virtio.Console;
using Vmm.Devices.Virtio.Rng;
using Vmm.Devices.VirtioMedia.Device;
using Vmm.Devices.VirtioMedia.Frames;
using Vmm.Kvm;
using Vmm.Kvm.Vcpus;

namespace Vmm.Cli;

/// <summary>One composed VM: memory, KVM, buses, devices, console, for the host's architecture
/// (<see cref="MachinePlatform"/> supplies what differs). Built by <see cref="Build"/>, run once.</summary>
internal sealed class Machine : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly VmConfig _config;
    private readonly Log _log;
    private KvmVm? _vm;
    private BootCpuState? _boot;
    private StdioConsole? _console;
    private ConsoleUart? _uart;
    private Stream? _consoleOut;
    private Action<ReadOnlySpan<byte>>? _consoleInput;

    private readonly Action<string>? _consoleObserver;
    private readonly IFrameObserver? _frameObserver;

    private Machine(VmConfig config, Log log, Action<string>? consoleObserver, IFrameObserver? frameObserver)
    {
        _config = config;
        _log = log;
        _consoleObserver = consoleObserver;
        _frameObserver = frameObserver;
    }

    public IoBus PioBus { get; } = new("port I/O");
    public IoBus MmioBus { get; } = new("MMIO");

    /// <param name="consoleObserver">Also receives each line the guest prints on its console (the demo and tests
    /// read results this way); the console still goes to stdout.</param>
    /// <param name="frameObserver">Sees every frame the media devices complete (<c>vmm demo --dump-frames</c>).</param>
    public static Machine Build(VmConfig config, Log log, Action<string>? consoleObserver = null, IFrameObserver? frameObserver = null)
    {
        var m = new Machine(config, log, consoleObserver, frameObserver);
        try
        {
            m.Compose();
            return m;
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }

    private void Compose()
    {
        KvmSystem kvm;
        try
        {
            HostProfile? forced = _config.HostProfile switch
            {
                HostProfileChoice.Pvm => HostProfile.Pvm,
                HostProfileChoice.Standard => HostProfile.Standard,
                _ => null,
            };
            kvm = KvmSystem.Open(msg => _log.Debug(msg), profile: forced);
        }
        catch (KvmUnavailableException e)
        {
            throw new VmStartException(e.Message, e);
        }
        _owned.Add(kvm);
        HostProfile profile = kvm.Profile;
        _log.Info(_config.HostProfile == HostProfileChoice.Auto
            ? $"host: {profile.Description}"
            : $"host profile forced by --host-profile: {profile.Description}");
        MachinePlatform platform = MachinePlatform.For(kvm);
        int maxCpus = Math.Min(kvm.MaxCpusPerVm, platform.MaxCpus);
        if (_config.Cpus > maxCpus)
        {
            throw new VmStartException($"--cpus {_config.Cpus} is more than this host supports ({maxCpus})");
        }

        byte[] kernel = VmLauncher.ReadInput(_config.KernelPath, "kernel");
        KernelArchitecture kernelArchitecture = KernelFiles.DetectArchitecture(kernel);
        if (kernelArchitecture != KernelArchitecture.Unknown && kernelArchitecture != platform.Architecture)
        {
            throw new VmStartException($"{_config.KernelPath} is {Describe(kernelArchitecture)} kernel; this host runs {platform.Name} guests only");
        }
        byte[] initrd = _config.InitrdPath is null ? [] : VmLauncher.ReadInput(_config.InitrdPath, "initrd");
        GuestMemory memory = VmLauncher.CreateGuestMemory(_config.MemMiB, platform);
        _owned.Add(memory);
        foreach (GuestRegion r in memory.Regions)
        {
            // Where guest RAM lives in this process: footprint measurements leave these mappings out of the VMM's RSS.
            _log.Debug($"guest RAM {r.Start}-0x{r.End - 1:x} at host 0x{r.HostAddress:x}-0x{r.HostAddress + (nint)r.Size - 1:x}");
        }

        KernelCmdline cmdline = VmLauncher.BuildCmdline(_config, profile, platform);
        LinuxBootResult boot;
        try
        {
            boot = platform.LoadKernel(memory, kernel, initrd, cmdline, _config);
        }
        catch (Exception e) when (e is KernelImageException or BootException)
        {
            throw new VmStartException(e.Message, e);
        }
        _log.Info(boot.Describe());
        foreach (string w in boot.Warnings)
        {
            _log.Warn(w);
        }
        _log.Debug($"cmdline: {boot.Cmdline}");
        _boot = boot.Cpu;

        _vm = kvm.CreateVm(memory, _config.Cpus);
        _owned.Add(_vm);
        Stream stdout = StdioConsole.OpenOutput();
        _consoleOut = _consoleObserver is null ? stdout : new LineObserverStream(stdout, _consoleObserver);
        ConsoleUart uart = _uart = platform.AddPlatformDevices(_vm, PioBus, MmioBus, _consoleOut, _owned);
        _consoleInput = data => uart.Enqueue(data);
        List<int> slots = AddPciDevices(_vm, memory, platform);
        try
        {
            platform.WriteFirmwareTables(memory, _config.Cpus, slots);
        }
        catch (BootException e)
        {
            throw new VmStartException(e.Message, e);
        }
    }

    private static string Describe(KernelArchitecture architecture) =>
        architecture == KernelArchitecture.Arm64 ? "an arm64" : "an x86_64";

    /// <summary>The PCI host bridge and the virtio devices behind it; returns their slots (for the x86 MP table's
    /// INTx routes, used only by a guest that does not enable MSI-X).</summary>
    private List<int> AddPciDevices(KvmVm vm, GuestMemory memory, MachinePlatform platform)
    {
        var slots = new List<int>();
        PciRoot pci = platform.CreatePciRoot(vm, MmioBus, (ulong)_config.MemMiB << 20);
        void Add(IVirtioDevice device, string what)
        {
            int next = pci.NextFreeSlot;
            if (next < 0)
            {
                throw new UsageException($"too many devices: PCI bus 0 is full, {what} does not fit");
            }
            // The device's MSIs carry its requester id, which an arm64 ITS translates by.
            var transport = new VirtioPciDevice(device, memory, vm.MsiForDevice(PciRoot.RequesterId(next)), vm.IoEvents, vm.MemoryMapper);
            _owned.Add(transport);
            int slot = pci.Add(transport);
            slots.Add(slot);
            _log.Info($"pci 00:{slot:x2}.0: {what}");
            // One line per event, however often a hostile driver repeats the violation behind it.
            transport.NeedsResetSet += reason => _log.Warn($"pci 00:{slot:x2}.0: DEVICE_NEEDS_RESET ({reason})");
            transport.DriverReset += reason => _log.Info(reason is null
                ? $"pci 00:{slot:x2}.0: reset by the driver while running"
                : $"pci 00:{slot:x2}.0: reset by the driver after DEVICE_NEEDS_RESET");
        }
        if (_config.Rng)
        {
            Add(new VirtioRng(), "virtio-rng");
        }
        if (_config.Console == ConsoleKind.Virtio)
        {
            var console = new VirtioConsole(_consoleOut!);
            _consoleInput = data => console.EnqueueInput(data);
            Add(console, "virtio-console (hvc0)");
        }
        foreach (string spec in _config.Media)
        {
            if (!VirtioMediaDevice.TryCreate(spec, new LogLogger(_log), out VirtioMediaDevice? media, out string? error))
            {
                throw new UsageException($"--media {spec}: {error}");
            }
            media.FrameObserver = _frameObserver;
            // The name is the device's tag in the vmm.media.* metrics (dotnet-counters shows device=media0).
            Add(media, $"virtio-media {media.Metrics.DeviceName} ({spec})");
        }
        platform.AttachPci(pci, PioBus, MmioBus);
        return slots;
    }

    public VmRunResult Run()
    {
        KvmVm vm = _vm ?? throw new InvalidOperationException("machine not built");
        ConsoleUart uart = _uart!;
        _console = new StdioConsole();
        _console.Start(
            _consoleInput!,
            () => vm.Control.RequestExit(0, "Ctrl-A X pressed on the console"));
        try
        {
            return vm.Run(_boot!, _config.Cpus, PioBus, MmioBus, new VmRunOptions
            {
                Log = msg => _log.Debug(msg),
                StopOnSigterm = true,
            });
        }
        finally
        {
            uart.FlushOutput();
            _console.Dispose();
        }
    }

    public void Dispose()
    {
        _console?.Dispose();
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }
    }
}
