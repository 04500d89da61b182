using Iced.Intel;
using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Kvm.Vcpus;

namespace Vmm.Kvm.Tests;

/// <summary>A tiny VM for tests: 1 MiB of RAM minus the VGA hole (so 0xA0000 is free for MMIO), PIO and MMIO buses,
/// an exit port (0x501: the written byte becomes the exit code) and a recording device on ports 0x600–0x60F.</summary>
internal sealed class TestGuest : IDisposable
{
    public const ushort ExitPort = 0x501;
    public const ushort RecordPort = 0x600;
    public const ulong CodeAddress = 0x1000;

    public TestGuest(Action<string>? log = null)
    {
        Log = log ?? (_ => { });
        Memory = GuestMemory.CreateAnonymous((new GuestAddress(0), 0xA0000UL));
        Kvm = KvmSystem.Open(Log);
        Vm = Kvm.CreateVm(Memory);
        Pio = new IoBus("pio");
        Mmio = new IoBus("mmio");
        Pio.Insert(new ExitDevice(Vm.Control), ExitPort, 1);
        Pio.Insert(Recorder, RecordPort, 0x10);
    }

    public Action<string> Log { get; }
    public GuestMemory Memory { get; }
    public KvmSystem Kvm { get; }
    public KvmVm Vm { get; }
    public IoBus Pio { get; }
    public IoBus Mmio { get; }
    public RecordingDevice Recorder { get; } = new();

    /// <summary>Assembles 16-bit code with <paramref name="build"/> and loads it at <see cref="CodeAddress"/>.</summary>
    public void LoadRealModeCode(Action<Assembler> build) => LoadCode(16, CodeAddress, build);

    public void LoadCode(int bitness, ulong address, Action<Assembler> build)
    {
        var assembler = new Assembler(bitness);
        build(assembler);
        using var stream = new MemoryStream();
        assembler.Assemble(new StreamCodeWriter(stream), address);
        Memory.WriteBytes(new GuestAddress(address), stream.ToArray());
    }

    /// <summary>Real mode at 0:<see cref="CodeAddress"/>, stack at 0x8000.</summary>
    public static X86BootCpuState RealModeState(ulong rip = CodeAddress) => new()
    {
        Rip = rip,
        Rsp = 0x8000,
        Cr0 = 0x60000010,
        Code = new X86Segment(0, 0, 0xFFFF, Type: 0xB, Present: true, Dpl: 0, DefaultBig: false, Long: false, Granularity: false, CodeOrData: true),
        Data = new X86Segment(0, 0, 0xFFFF, Type: 0x3, Present: true, Dpl: 0, DefaultBig: false, Long: false, Granularity: false, CodeOrData: true),
        Task = new X86Segment(0, 0, 0xFFFF, Type: 0xB, Present: true, Dpl: 0, DefaultBig: false, Long: false, Granularity: false, CodeOrData: false),
        IdtLimit = 0x3FF,
        EntryKind = "real mode (test)",
    };

    /// <summary>Runs with a watchdog: a guest that never stops is stopped after <paramref name="timeout"/>.</summary>
    public VmRunResult Run(X86BootCpuState state, int cpuCount = 1, TimeSpan? timeout = null)
    {
        using var watchdog = new Timer(_ => Vm.Control.RequestExit(-99, "test watchdog"), null,
            timeout ?? TimeSpan.FromSeconds(20), Timeout.InfiniteTimeSpan);
        return Vm.Run(state, cpuCount, Pio, Mmio, new VmRunOptions { Log = Log, CaptureStateOnRequestedExit = true });
    }

    public void Dispose()
    {
        Vm.Dispose();
        Kvm.Dispose();
        Memory.Dispose();
    }

    private sealed class ExitDevice(IVmControl control) : IBusDevice
    {
        public void Read(ulong offset, Span<byte> data) => data.Clear();

        public void Write(ulong offset, ReadOnlySpan<byte> data) => control.RequestExit(data[0], $"exit port wrote 0x{data[0]:x}");
    }
}

/// <summary>Records every access (offset, width, value) so tests can assert what the guest did.</summary>
internal sealed class RecordingDevice : IBusDevice
{
    private readonly Lock _lock = new();
    public List<(bool Write, ulong Offset, int Width, ulong Value)> Accesses { get; } = new();
    public ulong ReadValue { get; set; } = 0x11223344_55667788;

    public void Read(ulong offset, Span<byte> data)
    {
        Span<byte> value = stackalloc byte[8];
        BitConverter.TryWriteBytes(value, ReadValue);
        value[..data.Length].CopyTo(data);
        lock (_lock)
        {
            Accesses.Add((false, offset, data.Length, ToValue(data)));
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            Accesses.Add((true, offset, data.Length, ToValue(data)));
        }
    }

    public (bool Write, ulong Offset, int Width, ulong Value)[] Snapshot()
    {
        lock (_lock)
        {
            return Accesses.ToArray();
        }
    }

    private static ulong ToValue(ReadOnlySpan<byte> data)
    {
        ulong v = 0;
        for (int i = data.Length - 1; i >= 0; i--)
        {
            v = (v << 8) | data[i];
        }
        return v;
    }
}
