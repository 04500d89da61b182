using Vmm.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Vmm.IntegrationTests;

/// <summary>
/// Boots the project's test guest kernel (firmware/linux-guest) with the real <c>vmm</c> executable. Budgets are
/// generous: on a PVM host every guest kernel instruction is emulated (~8–15 s to /init), on VMX/SVM it is well
/// under a second.
/// </summary>
[Collection(VmCollection.Name)]
public sealed class LinuxBootTests(ITestOutputHelper output)
{
    private const string InitMarker = VmmProcess.InitMarker;
    private static readonly TimeSpan BootBudget = TimeSpan.FromSeconds(300);

    private VmmRun Boot(string kernel, string initrd, params string[] extra)
    {
        string[] args = ["run", "--kernel", TestEnvironment.RequireGuestFile(kernel), "--initrd", TestEnvironment.RequireGuestFile(initrd), "--mem", "128", .. extra];
        VmmRun run = VmmProcess.BootLinux(output, args, BootBudget);
        return run;
    }

    [VmFact(guest: true)]
    public void Vmlinux_boots_to_init_which_ends_the_vm_through_the_exit_port()
    {
        VmmRun run = Boot("vmlinux", "initramfs-min.cpio");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Contains(InitMarker, run.Stdout);
        Assert.Equal(0, run.ExitCode);
    }

    [VmFact(guest: true)]
    public void BzImage_is_extracted_by_the_vmm_and_boots_to_init()
    {
        VmmRun run = Boot("bzImage", "initramfs-min.cpio", "--log-level", "debug");
        Assert.False(run.TimedOut, run.ToString());
        Assert.Contains(InitMarker, run.Stdout);
        Assert.Contains("bzImage", run.Stderr);
        Assert.Equal(0, run.ExitCode);
    }

    [VmFact(guest: true)]
    public void Two_vcpus_are_seen_by_the_guest()
    {
        VmmRun run = Boot("vmlinux", "initramfs.cpio", "--cpus", "2");
        Assert.Contains(InitMarker, run.Stdout);
        Assert.Contains("VMM-GUEST: cpus=2", run.Stdout);
        Assert.Equal(0, run.ExitCode);
    }

    [VmFact(guest: true)]
    public void Guest_reboot_ends_the_vmm_with_exit_code_zero()
    {
        VmmRun run = Boot("vmlinux", "initramfs.cpio", "--cmdline", "vmmtest=reboot");
        Assert.Contains("VMM-GUEST: test reboot start", run.Stdout);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("reset", run.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [VmFact(guest: true)]
    public void Exit_port_value_becomes_the_vmm_exit_code()
    {
        VmmRun run = Boot("vmlinux", "initramfs.cpio", "--cmdline", "vmmtest=exitcode");
        Assert.Contains("VMM-GUEST: test exitcode start", run.Stdout);
        Assert.Equal(42, run.ExitCode);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VmCollection
{
    /// <summary>VM tests run one at a time: the machine has two cores and boot budgets assume one VM.</summary>
    public const string Name = "VMs";
}
