namespace Vmm.PerfLab.Report;

/// <summary>Where and on what a run happened: figures only compare within one run, and each says its host.</summary>
internal sealed record MachineFacts(
    string Cpu, int Cores, string Kernel, string HostKind, string Commit, string Runtime, bool Vectors, DateTimeOffset Date);

/// <summary>Transport cost per frame against one copy of the frame (suite 1). TransportNsPerFrame is the VMM's CPU
/// per frame: the device's threads for the testbed; every VMM thread but the vCPUs' guest mode for the firmware
/// guest; the calling thread (device and simulated driver) for the stepped testbed. DeviceThreadsNsPerFrame is the
/// device's threads alone. WakeupNs is the CPU cost of one thread wake-up measured in the same run, and
/// DeviceWakeupsPerFrame the device's CPU per frame in units of it.</summary>
internal sealed record TransportResult(
    string Driver, uint Width, uint Height, string Format, uint SizeImage, int Frames,
    double TransportNsPerFrame, double DeviceThreadsNsPerFrame, double CopyNsPerFrame, double Ratio, double Goal, bool Met,
    double WakeupNs, double DeviceWakeupsPerFrame, CounterFigures? Counters)
{
    /// <summary>Firmware guest: CPU ns per frame of each thread of the vmm process by name (vCPU threads included,
    /// guest mode and all), to show where the time goes.</summary>
    public SortedDictionary<string, double>? CpuNsPerFrameByThread { get; init; }
}

/// <summary>One streaming case (suite 2). Generator: "simd" (the camera's vector code) or "scalar" (the same process
/// with the JIT's hardware intrinsics off, so every vector path takes its scalar loop).</summary>
internal sealed record StreamingResult(
    string Generator, uint Width, uint Height, string Format, uint SizeImage, uint RequestedFps, int Frames,
    double Fps, double DeviceCpuPercent, double DeviceCpuUsPerFrame, double LatencyP50Ms, double LatencyP99Ms,
    long SequenceGaps, int Buffers, CounterFigures Counters);

/// <summary>The same window read from the VMM's meter (vmm.media.*): frames the device completed, bytes it handed
/// over and copied per frame, and its command latency.</summary>
internal sealed record CounterFigures(long Frames, double BytesDeliveredPerFrame, double BytesCopiedPerFrame, double CommandLatencyP50Us, double CommandLatencyP99Us);

/// <summary>The cost of one VM exit to an unclaimed port under vmm and under a minimal C KVM loop (suite 4).</summary>
internal sealed record ExitResult(int Exits, int Rounds, double VmmNsPerExit, double CLoopNsPerExit, double Ratio, double Goal, bool Met);

/// <summary>Median seconds from process start to the guest's /init marker, vmm (Build: NativeAOT or JIT) and QEMU
/// microvm (suite 3).</summary>
internal sealed record BootResult(string? Build, int Runs, double VmmSeconds, double QemuMicrovmSeconds, double Ratio, double Goal, bool Met);

/// <summary>One build of <c>vmm</c> (suite 3): medians over Runs runs. VmmRssMiB is the process's RSS without guest
/// RAM and the virtio-media shared-memory region (each reported apart), split into anonymous (heaps, stacks, the
/// runtime's own memory) and file-backed pages (the binary and libraries). StartupMs is from just before the
/// process was started to vCPU 0's first entry into the guest. Goals are for the NativeAOT build.</summary>
internal sealed record FootprintResult(
    string Build, string Binary, long BinaryBytes, int Runs,
    double VmmRssMiB, double VmmAnonymousRssMiB, double VmmFileRssMiB, double GuestRamRssMiB, double SharedMemoryRssMiB,
    double StartupMs, double[] VmmRssMiBRuns, double[] StartupMsRuns,
    double RssGoalMiB, double StartupGoalMs, bool RssMet, bool StartupMet);

/// <summary>results.json.</summary>
internal sealed record LabResults(MachineFacts Machine, bool Quick, string[] Suites)
{
    public List<TransportResult> Transport { get; init; } = [];
    public List<StreamingResult> Streaming { get; init; } = [];
    public List<ExitResult> Exits { get; init; } = [];
    public List<BootResult> Boot { get; init; } = [];
    public List<FootprintResult> Footprint { get; init; } = [];

    /// <summary>What was not run, and why.</summary>
    public List<string> Notes { get; init; } = [];
}
