namespace Vmm.IntegrationTests.Support;

/// <summary>
/// Where the integration tests find their inputs. <c>./build.sh test</c> builds them and exports the variables:
/// <c>VMM_GUEST_DIR</c> (test guest kernel kit), <c>VMM_FIRMWARE_DIR</c> (guest payloads), <c>VMM_STOCK_KERNEL</c>
/// (Debian's stock bzImage). Under CI (<c>CI=true</c>) a missing input or an unusable /dev/kvm fails the test
/// instead of skipping it.
/// </summary>
internal static class TestEnvironment
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? GuestDir => Existing(Environment.GetEnvironmentVariable("VMM_GUEST_DIR"));
    public static string? FirmwareDir => Existing(Environment.GetEnvironmentVariable("VMM_FIRMWARE_DIR"));
    public static string? StockKernel => Environment.GetEnvironmentVariable("VMM_STOCK_KERNEL") is { Length: > 0 } p && File.Exists(p) ? p : null;

    /// <summary>Inside the lab (lab/run.sh): a standard KVM under QEMU TCG, where absolute speed means nothing.</summary>
    public static bool InLab => Environment.GetEnvironmentVariable("VMM_LAB") == "1";

    /// <summary>The PVM software KVM, by the VMM's own rule (the module loaded and a KVM device registered).</summary>
    public static bool IsPvmHost => Vmm.Kvm.HostProfile.Detect().IsPvm;

    /// <summary>Why KVM tests cannot run here, or null when /dev/kvm opens read-write.</summary>
    public static string? KvmUnavailableReason { get; } = ProbeKvm();

    private static string? Existing(string? dir) => dir is { Length: > 0 } && Directory.Exists(dir) ? dir : null;

    private static string? ProbeKvm()
    {
        try
        {
            using FileStream f = new("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"/dev/kvm is not usable ({e.Message})";
        }
    }

    /// <summary>The reason to skip, or null to run. Under CI nothing is skipped: the test runs and fails.</summary>
    public static string? SkipReason(bool needsKvm, bool needsGuest, bool needsFirmware, bool needsStockKernel, bool needsStandardHost = false)
    {
        if (needsStandardHost && IsPvmHost)
        {
            // Not a missing input: this host cannot show it. ./build.sh test runs it in the lab's standard-host set.
            return "needs an ordinary VMX/SVM KVM; on this PVM host ./build.sh test runs it in the lab (lab/run.sh)";
        }
        if (IsCi)
        {
            return null;
        }
        if (needsKvm && KvmUnavailableReason is { } k)
        {
            return k;
        }
        if (needsGuest && GuestDir is null)
        {
            return "VMM_GUEST_DIR is not set: run the tests with ./build.sh test, which builds the test guest kernel kit";
        }
        if (needsFirmware && FirmwareDir is null)
        {
            return "VMM_FIRMWARE_DIR is not set: run the tests with ./build.sh test, which builds firmware/";
        }
        if (needsStockKernel && StockKernel is null)
        {
            return "VMM_STOCK_KERNEL is not set: ./build.sh test fetches Debian's stock kernel";
        }
        return null;
    }

    public static string RequireGuestFile(string name)
    {
        string dir = GuestDir ?? throw new InvalidOperationException("VMM_GUEST_DIR is not set (./build.sh test sets it)");
        string path = Path.Combine(dir, name);
        return File.Exists(path) ? path : throw new FileNotFoundException($"guest kit file missing: {path}");
    }

    public static string RequireFirmware(string name)
    {
        string dir = FirmwareDir ?? throw new InvalidOperationException("VMM_FIRMWARE_DIR is not set (./build.sh test sets it)");
        string path = Path.Combine(dir, name);
        return File.Exists(path) ? path : throw new FileNotFoundException($"firmware payload missing: {path}");
    }
}

/// <summary>A test that boots a VM: skipped with the reason outside CI when KVM or its inputs are missing.</summary>
internal sealed class VmFactAttribute : FactAttribute
{
    public VmFactAttribute(bool guest = false, bool firmware = false, bool stockKernel = false, bool standardHost = false)
    {
        if (TestEnvironment.SkipReason(needsKvm: true, guest, firmware, stockKernel, standardHost) is { } reason)
        {
            Skip = reason;
        }
    }
}
