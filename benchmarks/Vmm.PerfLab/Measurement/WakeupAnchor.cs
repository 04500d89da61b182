namespace Vmm.PerfLab.Measurement;

/// <summary>
/// The second anchor of the transport suite: the CPU cost of waking a blocked thread, measured in the same run.
/// A threaded device pays at least one such wake-up per frame (the guest's notify wakes the command thread; the
/// frame clock's timer wakes the clock), so this says how much of the transport cost is the host's scheduler and
/// not our code.
/// </summary>
internal static class WakeupAnchor
{
    /// <summary>CPU nanoseconds per wake-up, both sides counted (the waker's signal and the wakee's wait and
    /// return): the median of <paramref name="trials"/> trials of <paramref name="roundTrips"/> ping-pongs between
    /// two threads on <see cref="AutoResetEvent"/>s (a futex-backed wait, like the device's). Trials differ by
    /// where the scheduler puts the two threads (one CPU, or two with an inter-processor interrupt per wake-up).</summary>
    public static double NanosecondsPerWakeup(int roundTrips, int trials)
    {
        var perTrial = new List<double>(trials);
        for (int i = 0; i < trials; i++)
        {
            perTrial.Add(OneTrial(roundTrips));
        }
        return Percentiles.Of(perTrial, 50);
    }

    private static double OneTrial(int roundTrips)
    {
        using var ping = new AutoResetEvent(false);
        using var pong = new AutoResetEvent(false);
        long partnerCpu = 0;
        var partner = new Thread(() =>
        {
            long start = CpuClock.CurrentThread();
            for (int i = 0; i < roundTrips; i++)
            {
                ping.WaitOne();
                pong.Set();
            }
            partnerCpu = CpuClock.CurrentThread() - start;
        })
        { IsBackground = true, Name = "wake-up anchor" };
        partner.Start();
        long ownStart = CpuClock.CurrentThread();
        for (int i = 0; i < roundTrips; i++)
        {
            ping.Set();
            pong.WaitOne();
        }
        long ownCpu = CpuClock.CurrentThread() - ownStart;
        partner.Join();
        return (double)(ownCpu + partnerCpu) / (2.0 * roundTrips);
    }
}
