using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// Debian's stock 6.12 bzImage (linux-image-6.12.*-amd64-unsigned, fetched by ./build.sh test): the VMM extracts its
/// zstd payload and starts it. On a PVM host without the host profile's work-arounds the kernel stops at the first
/// instruction KVM's emulator cannot run (CX16 is advertised, so SLUB uses <c>lock cmpxchg16b</c>) and the VMM must
/// report it as a crash report: exit reason, registers, disassembly at RIP. On a VMX/SVM host the same kernel runs
/// until it finds no root file system, panics and reboots (exit 0). Slow: about a minute of emulated early boot.
/// </summary>
[Collection(VmCollection.Name)]
public sealed class StockKernelTests(ITestOutputHelper output)
{
    private static bool IsPvmHost => Directory.Exists("/sys/module/kvm_pvm");

    [VmFact(stockKernel: true)]
    [Trait("Category", "Slow")]
    public void Stock_debian_bzImage_is_extracted_started_and_its_failure_reported()
    {
        string kernel = TestEnvironment.StockKernel ?? throw new InvalidOperationException("VMM_STOCK_KERNEL is not set (./build.sh test sets it)");
        VmmRun run = VmmProcess.Run(["run", "--kernel", kernel, "--mem", "256", "--host-profile", "standard"], TimeSpan.FromMinutes(8));
        output.WriteLine(run.ToString());
        Assert.False(run.TimedOut, run.ToString());
        Assert.Matches(@"kernel: bzImage \(Zstd payload, \d+ -> \d+ bytes", run.Stderr);
        if (IsPvmHost)
        {
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("emulation failure (KVM_EXIT_INTERNAL_ERROR)", run.Stderr);
            Assert.Matches(@"RIP=ffffffff[0-9a-f]{8}", run.Stderr);
            Assert.Matches(@"CR0=[0-9a-f]{16} CR2=", run.Stderr);
            Assert.Matches(@"ffffffff[0-9a-f]{8}  [0-9a-f ]+ +\S.*<== RIP", run.Stderr);
            Assert.Contains("cmpxchg16b", run.Stderr);
        }
        else
        {
            Assert.Contains("Kernel panic", run.Stdout);
            Assert.Equal(0, run.ExitCode);
        }
    }
}
