using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// Debian's stock 6.12 bzImage (linux-image-6.12.*-amd64-unsigned, fetched by ./build.sh test), as a user would boot
/// it. On an ordinary VMX/SVM host it reaches the test kit's busybox /init with two vCPUs, both when the VMM extracts
/// the payload and when the kernel's own decompressor runs (the classic bzImage entry). On a PVM host no stock kernel
/// reaches user space (host-kvm.md); there, without the host profile's work-arounds, the kernel stops at the first
/// instruction KVM's emulator cannot run (CX16 is advertised, so SLUB uses <c>lock cmpxchg16b</c>), and the VMM must
/// report it: exit reason, registers, disassembly at RIP.
/// </summary>
[Collection(VmCollection.Name)]
public sealed class StockKernelTests(ITestOutputHelper output)
{
    private const string InitMarker = VmmProcess.InitMarker;

    // The lab runs nested under TCG: the in-guest zstd decompressor and early boot take minutes there.
    private static readonly TimeSpan Budget = TimeSpan.FromMinutes(10);

    private VmmRun Boot(params string[] extra)
    {
        string kernel = TestEnvironment.StockKernel ?? throw new InvalidOperationException("VMM_STOCK_KERNEL is not set (./build.sh test sets it)");
        return VmmProcess.BootLinux(output,
            ["run", "--kernel", kernel, "--initrd", TestEnvironment.RequireGuestFile("initramfs.cpio"), "--mem", "512", .. extra],
            Budget);
    }

    [VmFact(stockKernel: true, guest: true)]
    [Trait("Category", "Slow")]
    public void Stock_bzImage_extracted_by_the_vmm_reaches_init_with_two_vcpus_or_on_pvm_a_crash_report()
    {
        if (TestEnvironment.IsPvmHost)
        {
            VmmRun crash = Boot("--host-profile", "standard");
            Assert.False(crash.TimedOut, crash.ToString());
            Assert.Matches(@"kernel: bzImage \(Zstd payload, \d+ -> \d+ bytes", crash.Stderr);
            Assert.Equal(1, crash.ExitCode);
            Assert.Contains("emulation failure (KVM_EXIT_INTERNAL_ERROR)", crash.Stderr);
            Assert.Matches(@"RIP=ffffffff[0-9a-f]{8}", crash.Stderr);
            Assert.Matches(@"CR0=[0-9a-f]{16} CR2=", crash.Stderr);
            Assert.Matches(@"ffffffff[0-9a-f]{8}  [0-9a-f ]+ +\S.*<== RIP", crash.Stderr);
            Assert.Contains("cmpxchg16b", crash.Stderr);
            return;
        }
        VmmRun run = Boot("--cpus", "2");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Matches(@"kernel: bzImage \(Zstd payload, \d+ -> \d+ bytes", run.Stderr);
        Assert.Contains(InitMarker, run.Stdout);
        Assert.Contains("VMM-GUEST: cpus=2", run.Stdout);
        Assert.Equal(0, run.ExitCode);
    }

    [VmFact(stockKernel: true, guest: true, standardHost: true)]
    [Trait("Category", "Slow")]
    public void Stock_bzImage_through_its_own_decompressor_reaches_init_with_two_vcpus()
    {
        VmmRun run = Boot("--cpus", "2", "--boot", "bzimage");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Contains(InitMarker, run.Stdout);
        Assert.Contains("VMM-GUEST: cpus=2", run.Stdout);
        Assert.Equal(0, run.ExitCode);
    }
}
