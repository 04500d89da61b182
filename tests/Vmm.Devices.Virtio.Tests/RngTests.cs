using Vmm.Core.Memory;
using Vmm.Core.Virtio.Queues;
using Vmm.Devices.Virtio.Rng;

using Vmm.Testing.Virtio;

namespace Vmm.Devices.Virtio.Tests;

public sealed class RngTests
{
    [Fact]
    public void FillsWritableBuffersWithRandomBytes_OnItsOwnThread()
    {
        using var h = new VirtioDeviceHarness(new VirtioRng());
        VirtQueueDriver d = h.Drivers[0];
        d.Submit(default, 64);
        d.Submit(default, 64);
        d.Kick();
        DriverCompletion a = h.WaitUsed(0), b = h.WaitUsed(0);
        Assert.Equal(64u, a.WrittenLength);
        Assert.Equal(64u, b.WrittenLength);
        byte[] ra = d.GetResponse(a).ToArray(), rb = d.GetResponse(b).ToArray();
        Assert.NotEqual(ra, rb);
        Assert.Contains(ra, x => x != 0);
        Assert.True(h.WaitUntil(() => h.Interrupts(0) > 0));
        Assert.Equal(128, ((VirtioRng)h.Device).BytesServed);
    }

    [Fact]
    public void ScatteredAndIndirectBuffers_AreAllFilled()
    {
        using var h = new VirtioDeviceHarness(new VirtioRng());
        VirtQueueDriver d = h.Drivers[0];
        GuestAddress x = d.AllocateBuffer(16), y = d.AllocateBuffer(32);
        h.Memory.GetSpan(x, 16).Clear();
        h.Memory.GetSpan(y, 32).Clear();
        d.AddChain([new(x, 16, true), new(y, 32, true)], indirect: true);
        d.Kick();
        Assert.Equal(48u, h.WaitUsed(0).WrittenLength);
        Assert.Contains(h.Memory.GetSpan(y, 32).ToArray(), v => v != 0);
    }

    [Fact]
    public void HugeRequest_IsCappedPerChain()
    {
        using var h = new VirtioDeviceHarness(new VirtioRng());
        h.Drivers[0].Submit(default, 200_000);
        h.Drivers[0].Kick();
        Assert.Equal((uint)VirtioRng.MaxBytesPerRequest, h.WaitUsed(0).WrittenLength);
    }

    [Fact]
    public void MalformedChain_ReportsNeedsReset_AndDeviceStaysResettable()
    {
        using var h = new VirtioDeviceHarness(new VirtioRng());
        VirtQueueDriver d = h.Drivers[0];
        d.WriteDescriptor(0, new VirtqDescriptor(0x100000, 16, VirtqDescriptor.FlagWrite | VirtqDescriptor.FlagNext, 0));
        d.PublishHead(0);
        d.Kick();
        Assert.True(h.WaitUntil(() => h.NeedsResetReasons.Count > 0));
        Assert.Contains("ChainTooLong", h.NeedsResetReasons[0]);
        h.Device.Reset();
        h.Device.Reset();
    }

    [Fact]
    public void WithEventIdx_ManyRequestsAllComplete()
    {
        using var h = new VirtioDeviceHarness(new VirtioRng(), eventIdx: true);
        VirtQueueDriver d = h.Drivers[0];
        int done = 0;
        for (int round = 0; round < 200; round++)
        {
            d.Submit(default, 32);
            d.Kick();
            DriverCompletion c = h.WaitUsed(0);
            d.Release(c);
            done++;
        }
        Assert.Equal(200, done);
    }
}
