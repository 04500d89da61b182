using System.Diagnostics.Metrics;
using Vmm.Core.Metrics;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Vcpus;

/// <summary>
/// <c>vmm.kvm.exits</c>: every return from KVM_RUN with an exit to handle, tagged <c>reason</c> (the kernel's
/// KVM_EXIT_* name in lower case: io, mmio, hlt, shutdown, intr, irq_window_open, internal_error, system_event,
/// fail_entry, …; anything this VMM has no name for is <c>other</c>). Exits are the hottest path there is, so each
/// reason's tag is built once and a count allocates nothing.
/// </summary>
internal static class VcpuExitMetrics
{
    public const string ExitsName = "vmm.kvm.exits";
    public const string ReasonTag = "reason";

    private static readonly Counter<long> Exits = VmmMeter.Meter.CreateCounter<long>(ExitsName, "{exit}",
        "vCPU exits the VMM handled, by reason (io, mmio, hlt, shutdown, ...)");

    // Indexed by exit reason up to the largest one named; the extra last entry is "other".
    private static readonly KeyValuePair<string, object?>[] ReasonTags = BuildReasonTags();

    public static void Count(uint exitReason) =>
        Exits.Add(1, ReasonTags[Math.Min(exitReason, (uint)ReasonTags.Length - 1)]);

    /// <summary>The <c>reason</c> tag's value for <paramref name="exitReason"/>.</summary>
    public static string ReasonName(uint exitReason) =>
        (string)ReasonTags[Math.Min(exitReason, (uint)ReasonTags.Length - 1)].Value!;

    private static KeyValuePair<string, object?>[] BuildReasonTags()
    {
        KvmExitReason[] named = Enum.GetValues<KvmExitReason>();
        var tags = new KeyValuePair<string, object?>[(int)named.Max() + 2];
        Array.Fill(tags, new(ReasonTag, "other"));
        foreach (KvmExitReason reason in named)
        {
            tags[(int)reason] = new(ReasonTag, SnakeCase(reason.ToString()));
        }
        return tags;
    }

    // IrqWindowOpen -> irq_window_open, as KVM_EXIT_IRQ_WINDOW_OPEN is spelled.
    private static string SnakeCase(string name)
    {
        var s = new System.Text.StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                s.Append('_');
            }
            s.Append(char.ToLowerInvariant(name[i]));
        }
        return s.ToString();
    }
}
