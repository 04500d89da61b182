using Xunit.Abstractions;

namespace Vmm.Arm64Lab.Tests;

/// <summary>
/// vmm on a real arm64 KVM (issue 12), in the aarch64 lab: Debian's arm64 kernel boots to a busybox /init on two
/// vCPUs and powers off through PSCI; virtio-rng delivers 1 MiB with its MSIs translated by the GIC's ITS; the guest
/// console works over virtio-console too; the firmware guest streams test-pattern frames from virtio-media's shared
/// memory with every checksum matching; and an x86_64 kernel is refused in one line. Boot times are compared with QEMU on the same KVM.
/// </summary>
public sealed class Arm64GuestTests(ITestOutputHelper output)
{
    [Arm64LabFact]
    public void Linux_boots_to_init_on_two_vcpus_and_powers_off_through_psci_with_exit_code_0()
    {
        ScenarioLog boot = Arm64Lab.Scenario("vmm-boot-1");
        Assert.True(boot.Contains("ARM64-GUEST-INIT cpus=2"), boot.ToString());
        Assert.True(boot.Contains("ARM64-GUEST-DONE"), boot.ToString());
        Assert.True(boot.Contains("VM stopped: guest powered off (exit code 0)"), boot.ToString());
        Assert.Equal(0, boot.ExitCode);
        // Our device tree and devices as the guest saw them: the GICv3 with its ITS, the PL011 console, the ECAM host.
        Assert.True(boot.Contains("GICv3"), boot.ToString());
        Assert.True(boot.Contains("ttyAMA0"), boot.ToString());
        Assert.True(boot.Contains("pci-host-generic 3f000000.pcie"), boot.ToString());
    }

    [Arm64LabFact]
    public void Virtio_rng_reads_1_MiB_with_msi_x_through_the_its()
    {
        ScenarioLog rng = Arm64Lab.Scenario("rng");
        Assert.True(rng.Contains("RNG-OK bytes=1048576"), rng.ToString());
        // /proc/interrupts names the chip each virtio vector is on: ITS-PCI-MSIX for an MSI the ITS translated.
        Assert.True(rng.Lines.Any(l => l.Text.Contains("ARM64-GUEST-IRQ", StringComparison.Ordinal)
            && l.Text.Contains("ITS-PCI-MSIX", StringComparison.Ordinal) && l.Text.Contains("virtio", StringComparison.Ordinal)), rng.ToString());
        Assert.Equal(0, rng.ExitCode);
    }

    [Arm64LabFact]
    public void Virtio_console_carries_the_guest_console()
    {
        ScenarioLog hvc = Arm64Lab.Scenario("hvc");
        Assert.True(hvc.Contains("virtio-console (hvc0)"), hvc.ToString());
        Assert.True(hvc.Contains("ARM64-GUEST-INIT cpus=2"), hvc.ToString());
        Assert.True(hvc.Contains("ARM64-GUEST-DONE"), hvc.ToString());
        Assert.Equal(0, hvc.ExitCode);
    }

    [Arm64LabFact]
    public void The_firmware_guest_streams_test_pattern_frames_with_every_checksum_matching()
    {
        ScenarioLog stream = Arm64Lab.Scenario("stream");
        Assert.True(stream.Contains("media-stream firmware: arm64"), stream.ToString());
        Assert.True(stream.Contains("RESULT frames=60 width=640 height=480 format=NV12"), stream.ToString());
        Assert.True(stream.Contains("checksum_mismatch=0"), stream.ToString());
        Assert.True(stream.Contains("demo: frames checked against the generator: 60, mismatches: 0"), stream.ToString());
        Assert.Equal(0, stream.ExitCode);
    }

    [Arm64LabFact]
    public void An_x86_64_kernel_is_refused_in_one_line()
    {
        ScenarioLog wrong = Arm64Lab.Scenario("wrong-arch");
        var errors = wrong.Lines.Where(l => l.Text.StartsWith("vmm: error:", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains("is an x86_64 kernel; this host runs arm64 guests only", errors[0].Text);
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.DoesNotContain(wrong.Lines, l => l.Text.Contains("   at ", StringComparison.Ordinal)); // no stack trace
    }

    [Arm64LabFact]
    public void Boot_time_to_init_against_qemu_on_the_same_kvm()
    {
        Assert.True(Arm64Lab.HasScenario("qemu-boot-1"), "the lab image has no qemu-system-aarch64 (lab/run.sh --arch arm64 --with-qemu)");
        var vmm = new List<double>();
        var qemu = new List<double>();
        for (int i = 1; i <= 2; i++)
        {
            ScenarioLog v = Arm64Lab.Scenario($"vmm-boot-{i}"), q = Arm64Lab.Scenario($"qemu-boot-{i}");
            vmm.Add(v.SecondsTo("ARM64-GUEST-INIT"));
            qemu.Add(q.SecondsTo("ARM64-GUEST-INIT"));
            Assert.True(q.Contains("ARM64-GUEST-DONE"), q.ToString());
        }
        double ratio = vmm.Min() / qemu.Min();
        output.WriteLine($"aarch64 lab, start to /init marker (best of 2): vmm {vmm.Min():F2} s, QEMU -M virt -enable-kvm {qemu.Min():F2} s, ratio vmm/QEMU {ratio:F2} " +
                         $"(runs: vmm {string.Join(", ", vmm.Select(s => s.ToString("F2")))}; QEMU {string.Join(", ", qemu.Select(s => s.ToString("F2")))})");
        Console.WriteLine($"ARM64-BOOT-RATIO vmm={vmm.Min():F2}s qemu={qemu.Min():F2}s ratio={ratio:F2}");
    }
}
