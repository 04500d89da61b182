using Vmm.Core.Memory;
using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>
/// SHARED_PAGES (USERPTR) buffers are guest pages the guest may reuse once a buffer is handed back. Regression test
/// for issue 9, FINDING 4: a re-QBUF during a fill rewrote the scatter list the fill was writing through.
/// </summary>
public sealed class SharedPagesFillTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_fill_writes_only_the_pages_of_the_qbuf_it_serves_even_when_the_buffer_is_queued_again_meanwhile()
    {
        const uint FrameBytes = 320 * 240 * 2;
        using var fillStarted = new ManualResetEventSlim();
        using var releaseFill = new ManualResetEventSlim();
        using var fillEnded = new ManualResetEventSlim();
        int fills = 0;
        using VirtioMediaTestbed bed = VirtioMediaTestbed.Create(new TestPatternOptions
        {
            Width = 320,
            Height = 240,
            FillStarting = () =>
            {
                if (Interlocked.Increment(ref fills) == 1)
                {
                    fillStarted.Set();
                    releaseFill.Wait(Timeout);
                }
            },
            FillEnded = () => fillEnded.Set(),
        });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        Assert.Equal(1, s.RequestBuffers(1, V4l2Memory.UserPtr));
        SgEntry[] first = [new() { Start = 0x10_0000, Length = FrameBytes }];
        SgEntry[] second = [new() { Start = 0x80_0000, Length = FrameBytes }];
        bed.GuestMemory.GetSpan(new GuestAddress(second[0].Start), (int)FrameBytes).Fill(0xA5);
        Assert.Equal(0, s.QueueUserBuffer(0, [first]));
        s.StreamOn();
        Assert.True(fillStarted.Wait(Timeout), "the frame clock never started a fill");

        // Mid-fill: the guest stops the stream and queues the same buffer with other pages (the old ones are then
        // free for it to reuse). STREAMOFF may wait for the fill, so both go from another thread.
        Task<int> requeue = Task.Run(() =>
        {
            s.StreamOff();
            return s.QueueUserBuffer(0, [second]);
        });
        await Task.WhenAny(requeue, Task.Delay(500)); // before the fix both completed here, mid-fill
        Assert.False(requeue.IsCompleted, "STREAMOFF answered while a fill was still writing the buffer's pages");
        releaseFill.Set();
        Assert.Equal(0, await requeue.WaitAsync(Timeout));
        Assert.True(fillEnded.Wait(Timeout), "the fill never ended");

        // The fill went whole into the pages of the QBUF it served...
        Assert.Equal(TestPatternImage.ExpectedChecksum(FourCc.Yuyv, 320, 240, 0, TestPatternControls.Default),
                     TestPatternImage.Checksum(bed.GuestMemory.GetSpan(new GuestAddress(first[0].Start), (int)FrameBytes), default, default));
        // ...and, not streaming since, no fill may have touched the pages of the second QBUF.
        ReadOnlySpan<byte> untouched = bed.GuestMemory.GetSpan(new GuestAddress(second[0].Start), (int)FrameBytes);
        Assert.Equal(-1, untouched.IndexOfAnyExcept((byte)0xA5));
    }
}
