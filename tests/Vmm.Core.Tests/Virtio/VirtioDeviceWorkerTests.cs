using Vmm.Core.Events;
using Vmm.Core.Virtio;
using Vmm.Core.Virtio.Queues;

namespace Vmm.Core.Tests.Virtio;

public sealed class VirtioDeviceWorkerTests
{
    private sealed class RecordingNotifier : IVirtioNotifier
    {
        public readonly List<string> Reasons = [];
        public readonly ManualResetEventSlim ResetSet = new();
        public int Used;

        public void SignalUsedQueue(int queueIndex) => Interlocked.Increment(ref Used);

        public void SignalConfigChange()
        {
        }

        public void SignalNeedsReset(string reason)
        {
            lock (Reasons)
            {
                Reasons.Add(reason);
            }
            ResetSet.Set();
        }
    }

    private sealed class Throwing : IEventHandler
    {
        public void OnEvent(uint events) => throw new InvalidOperationException("boom");
    }

    [Fact]
    public void A_handler_failure_sets_needs_reset_with_the_device_name_and_stop_forgets_the_activation()
    {
        using var f = new QueueFixture();
        using var kick = new EventFd();
        var notifier = new RecordingNotifier();
        var activation = new VirtioActivation(f.Memory, [f.Queue], [kick], notifier, f.Features);
        using var worker = new VirtioDeviceWorker("virtio-test");

        worker.Start(activation, loop => loop.Add(kick, new Throwing()));
        Assert.Same(activation, worker.Activation);
        kick.Signal();

        Assert.True(notifier.ResetSet.Wait(TimeSpan.FromSeconds(5)));
        Assert.Equal(["virtio-test stopped: boom"], notifier.Reasons);
        worker.Stop();
        Assert.Null(worker.Activation);
    }

    [Fact]
    public void A_pass_interrupts_only_after_used_buffers_and_reports_a_ring_error()
    {
        using var f = new QueueFixture();
        var notifier = new RecordingNotifier();
        var activation = new VirtioActivation(f.Memory, [f.Queue], [], notifier, f.Features);
        using var worker = new VirtioDeviceWorker("virtio-test");

        worker.FinishPass(activation, 0, used: false, VirtQueueError.None);
        Assert.Equal(0, notifier.Used);
        worker.FinishPass(activation, 0, used: true, VirtQueueError.None);
        Assert.Equal(1, notifier.Used);
        worker.FinishPass(activation, 0, used: false, VirtQueueError.InvalidSize);
        Assert.Equal(["virtio-test queue 0: InvalidSize"], notifier.Reasons);
    }
}
