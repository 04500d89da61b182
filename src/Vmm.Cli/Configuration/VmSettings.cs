namespace Vmm.Cli.Configuration;

/// <summary>
/// The raw, unvalidated settings of <c>vmm run</c>: one property per flag, bound from the JSON config file and then
/// overridden by the flags actually given. Property names are the JSON keys (camelCase in the file is fine; binding
/// ignores case). <see cref="VmConfig.FromSettings"/> validates them.
/// </summary>
internal sealed class VmSettings
{
    public string? Kernel { get; set; }
    public string? Initrd { get; set; }
    public string? Cmdline { get; set; }
    public string? Mem { get; set; }
    public string? Cpus { get; set; }
    public string? Boot { get; set; }
    public string? Console { get; set; }
    public string? Rng { get; set; }
    public string? LogLevel { get; set; }
    public string? HostProfile { get; set; }
    public List<string> Media { get; set; } = [];
}
