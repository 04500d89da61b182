using BenchmarkDotNet.Attributes;
using Vmm.Core.Bus;
using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Virtio;
using Vmm.Devices.Pci;
using Vmm.Devices.Pci.Virtio;

namespace Vmm.Benchmarks.Queues;

/// <summary>Queue-notification handling: eventfd → EventLoop handler, and a guest notify write through the
/// virtio-pci BAR (the path taken when no ioeventfd is bound). 0 B allocated per operation expected.</summary>
[MemoryDiagnoser]
public class NotificationBenchmarks
{
    private EventLoop _sameThreadLoop = null!;
    private EventLoop _threadLoop = null!;
    private EventFd _sameThreadFd = null!;
    private EventFd _crossThreadFd = null!;
    private Counter _sameThreadCounter = null!;
    private Counter _crossThreadCounter = null!;
    private GuestMemory _memory = null!;
    private IoBus _mmio = null!;
    private ulong _notifyAddress;
    private EventFd _queueEvent = null!;
    private readonly byte[] _notifyValue = [1, 0];

    private sealed class Counter : IEventHandler
    {
        public long Count;

        public void OnEvent(uint events) => Volatile.Write(ref Count, Count + 1);
    }

    private sealed class IdleDevice : IVirtioDevice
    {
        private static readonly ushort[] Sizes = [256, 256];

        public VirtioDeviceType DeviceType => VirtioDeviceType.Rng;
        public ReadOnlySpan<ushort> QueueMaxSizes => Sizes;
        public ulong AvailableFeatures => 0;
        public IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions => [];
        public void ReadConfig(uint offset, Span<byte> data) => data.Clear();
        public void WriteConfig(uint offset, ReadOnlySpan<byte> data) { }
        public void Activate(VirtioActivation activation) { }
        public void Reset() { }
        public void Dispose() { }
    }

    [GlobalSetup]
    public void Setup()
    {
        _sameThreadLoop = new EventLoop("bench-same");
        _sameThreadFd = new EventFd();
        _sameThreadCounter = new Counter();
        _sameThreadLoop.Add(_sameThreadFd, _sameThreadCounter);

        _threadLoop = new EventLoop("bench-thread");
        _crossThreadFd = new EventFd();
        _crossThreadCounter = new Counter();
        _threadLoop.Add(_crossThreadFd, _crossThreadCounter);
        _threadLoop.Start();

        _memory = GuestMemory.CreateAnonymous((new GuestAddress(0), 1UL << 20));
        _mmio = new IoBus("mmio");
        var root = PciRoot.CreateX86(_mmio, 1 << 20);
        var pci = new VirtioPciDevice(new IdleDevice(), _memory, null, null, null);
        int slot = root.Add(pci);
        pci.WriteConfig(PciConfigRegisters.Command, [(byte)PciConfigRegisters.CommandMemorySpace, 0]);
        _notifyAddress = pci.GetBarAddress(0) + VirtioPciLayout.NotifyOffset + VirtioPciLayout.NotifyOffMultiplier;
        _queueEvent = pci.QueueEvent(1);
        _ = slot;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _threadLoop.Dispose();
        _sameThreadLoop.Dispose();
        _memory.Dispose();
    }

    /// <summary>Signal an eventfd and dispatch it on the same thread (epoll_wait + read + handler).</summary>
    [Benchmark]
    public int SignalAndDispatchSameThread()
    {
        _sameThreadFd.Signal();
        return _sameThreadLoop.RunOnce(0);
    }

    /// <summary>Signal an eventfd and spin until the EventLoop thread has run the handler (wake-up latency).</summary>
    [Benchmark]
    public long SignalToHandlerOnLoopThread()
    {
        long before = Volatile.Read(ref _crossThreadCounter.Count);
        _crossThreadFd.Signal();
        var spin = new SpinWait();
        while (Volatile.Read(ref _crossThreadCounter.Count) == before)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
        return before;
    }

    /// <summary>A 16-bit guest write to queue 1's notify address, dispatched through the MMIO bus to the
    /// virtio-pci BAR handler, which signals the queue eventfd; then the device side consumes it.</summary>
    [Benchmark]
    public bool NotifyWriteThroughPciBar()
    {
        _mmio.Write(_notifyAddress, _notifyValue);
        return _queueEvent.TryRead(out _);
    }
}
