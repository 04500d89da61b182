using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// The virtio-pci transport proven with Linux's own drivers: the test guest enumerates our PCI devices, binds
/// virtio-pci, reads 1 MiB through virtio-rng, uses MSI-X vectors, and runs a shell on hvc0 (virtio-console).
/// </summary>
[Collection(VmCollection.Name)]
public sealed class VirtioPciTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(300);

    private VmmRun Boot(IReadOnlyList<(string, string)> inputs, params string[] extra)
    {
        string[] args = ["run", "--kernel", TestEnvironment.RequireGuestFile("vmlinux"),
            "--initrd", TestEnvironment.RequireGuestFile("initramfs.cpio"), "--mem", "128", .. extra];
        VmmRun run = VmmProcess.Run(args, Budget, inputs);
        output.WriteLine(run.ToString());
        return run;
    }

    [VmFact(guest: true)]
    public void Linux_binds_virtio_pci_reads_1_MiB_from_virtio_rng_over_msix()
    {
        VmmRun run = Boot([], "--rng", "--media", "test-pattern", "--cmdline", "quiet vmmtest=virtio");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Equal(0, run.ExitCode);
        // 1AF4:1044 is virtio-rng (0x1040 + 4), 1AF4:1070 virtio-media (0x1040 + 48): both bound to virtio-pci.
        Assert.Matches(@"VMM-GUEST: pci 0000:00:0[0-9a-f]\.0 0x1af4:0x1044 driver=virtio-pci", run.Stdout);
        Assert.Matches(@"VMM-GUEST: pci 0000:00:0[0-9a-f]\.0 0x1af4:0x1070 driver=virtio-pci", run.Stdout);
        Assert.Contains("VMM-GUEST: hwrng current=virtio_rng", run.Stdout);
        Assert.Contains("VMM-GUEST: hwrng bytes=1048576", run.Stdout);
        // virtio-pci requests per-queue and config vectors; /proc/interrupts names them PCI-MSIX-… or PCI-MSI-X.
        Assert.Matches(@"VMM-GUEST: irq .*PCI-MSI.*virtio\d+-(config|requests|input)", run.Stdout);
    }

    [VmFact(guest: true)]
    public void Hvc0_is_the_console_of_a_shell()
    {
        VmmRun run = Boot(
            [("VMM-GUEST: test shell start", "echo VMM-SHELL-$((6*7))\n"), ("VMM-SHELL-42", "exit 7\n")],
            "--console", "virtio", "--cmdline", "quiet vmmtest=shell");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Contains("VMM-SHELL-42", run.Stdout);
        Assert.Equal(7, run.ExitCode);
    }
}
