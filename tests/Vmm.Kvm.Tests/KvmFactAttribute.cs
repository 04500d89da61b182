using Vmm.Kvm;

namespace Vmm.Kvm.Tests;

/// <summary>
/// A fact that needs a usable /dev/kvm. Skipped with the reason when /dev/kvm cannot be opened read-write — except
/// when the environment variable CI is "true": there the test runs and fails, so a CI machine without KVM is noticed.
/// </summary>
public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute()
    {
        string? reason = KvmAvailability.UnavailableReason;
        if (reason is not null && !KvmAvailability.IsCi)
        {
            Skip = $"KVM unusable: {reason}";
        }
    }
}

internal static class KvmAvailability
{
    private static readonly Lazy<string?> Reason = new(Probe);

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? UnavailableReason => Reason.Value;

    private static string? Probe()
    {
        try
        {
            using KvmSystem kvm = KvmSystem.Open();
            return null;
        }
        catch (KvmUnavailableException e)
        {
            return e.Message;
        }
    }
}
