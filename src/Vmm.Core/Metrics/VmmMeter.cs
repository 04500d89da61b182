using System.Diagnostics.Metrics;
using System.Reflection;

namespace Vmm.Core.Metrics;

/// <summary>
/// The VMM's one <see cref="Meter"/> ("Vmm"), shared by every layer: each layer creates its own instruments on it
/// (<c>vmm.media.*</c> in the virtio-media device, <c>vmm.kvm.*</c> in the vCPU loop, <c>vmm.virtio.*</c> in the
/// transport), so <c>dotnet-counters monitor --counters Vmm</c> and a <see cref="MeterListener"/> see them all.
/// Instruments are process-wide; a tag (e.g. <c>device</c>) says which device or VM a measurement belongs to.
/// <para>Hot paths record with tags built once (string values, or values boxed once), so a measurement allocates
/// nothing, with or without a listener.</para>
/// </summary>
public static class VmmMeter
{
    /// <summary>The meter's name, what <c>dotnet-counters --counters</c> takes.</summary>
    public const string Name = "Vmm";

    /// <summary>The meter; lives as long as the process (instruments on it are static too).</summary>
    public static Meter Meter { get; } = new(Name, Version);

    private static string? Version =>
        typeof(VmmMeter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(VmmMeter).Assembly.GetName().Version?.ToString();
}
