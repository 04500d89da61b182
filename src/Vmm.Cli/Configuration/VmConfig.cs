using System.Globalization;
using Vmm.Cli.Diagnostics;

namespace Vmm.Cli.Configuration;

/// <summary>How the boot vCPU enters the kernel.</summary>
internal enum BootSelection
{
    /// <summary>PVH if the (possibly extracted) vmlinux has the PVH note, else the 64-bit boot protocol.</summary>
    Auto,
    /// <summary>32-bit PVH entry with hvm_start_info.</summary>
    Pvh,
    /// <summary>64-bit Linux boot protocol (boot_params, long mode), as Firecracker does.</summary>
    Linux64,
    /// <summary>A bzImage entered at its 32-bit entry, decompressing itself in the guest (ordinary hosts only:
    /// minutes of emulated code on a PVM host).</summary>
    BzImage,
}

/// <summary>Which host profile applies (see HostProfile in Vmm.Kvm): detected, or forced for debugging.</summary>
internal enum HostProfileChoice
{
    /// <summary>PVM when /sys/module/kvm_pvm exists, else standard.</summary>
    Auto,
    /// <summary>The software-KVM work-arounds (command-line masks, CPUID rules, int3/fwait repairs).</summary>
    Pvm,
    /// <summary>No work-arounds: an ordinary VMX/SVM host. On a PVM host this shows how a guest fails without them.</summary>
    Standard,
}

/// <summary>Which device carries the guest console.</summary>
internal enum ConsoleKind
{
    Serial,
    Virtio,
}

/// <summary>Validated configuration of one VM run.</summary>
internal sealed record VmConfig
{
    public const int DefaultMemMiB = 256;
    public const int MinMemMiB = 16;
    public const int MaxMemMiB = 64 * 1024;
    public const int MaxCpus = 32;

    public required string KernelPath { get; init; }
    public string? InitrdPath { get; init; }
    /// <summary>The user's command line, replacing the default user part; null keeps the default.</summary>
    public string? Cmdline { get; init; }
    public int MemMiB { get; init; } = DefaultMemMiB;
    public int Cpus { get; init; } = 1;
    public BootSelection Boot { get; init; } = BootSelection.Auto;
    public ConsoleKind Console { get; init; } = ConsoleKind.Serial;
    public bool Rng { get; init; }
    public LogLevel LogLevel { get; init; } = LogLevel.Info;
    public HostProfileChoice HostProfile { get; init; } = HostProfileChoice.Auto;
    /// <summary>Media device specs, e.g. <c>test-pattern,width=640,height=480</c> or <c>/dev/video0</c>.</summary>
    public IReadOnlyList<string> Media { get; init; } = [];

    /// <summary>Checks every value and every file; throws <see cref="UsageException"/> with one clear sentence.</summary>
    public static VmConfig FromSettings(VmSettings s)
    {
        string kernel = s.Kernel is { Length: > 0 } k ? Path.GetFullPath(k)
            : throw new UsageException("no kernel given: use --kernel FILE (or \"kernel\" in the config file)");
        CheckReadableFile(kernel, "kernel");
        string? initrd = s.Initrd is { Length: > 0 } i ? Path.GetFullPath(i) : null;
        if (initrd is not null)
        {
            CheckReadableFile(initrd, "initrd");
        }
        if (s.Cmdline is not null && s.Cmdline.Contains('\0'))
        {
            throw new UsageException("--cmdline must not contain NUL characters");
        }
        var media = new List<string>();
        foreach (string m in s.Media)
        {
            if (!string.IsNullOrWhiteSpace(m))
            {
                media.Add(CheckMediaSpec(m.Trim()));
            }
        }
        return new VmConfig
        {
            KernelPath = kernel,
            InitrdPath = initrd,
            Cmdline = s.Cmdline,
            MemMiB = ParseInt(s.Mem, "--mem", "MiB of guest memory", DefaultMemMiB, MinMemMiB, MaxMemMiB),
            Cpus = ParseInt(s.Cpus, "--cpus", "vCPUs", 1, 1, MaxCpus),
            Boot = ParseEnum(s.Boot, "--boot", BootSelection.Auto),
            Console = ParseEnum(s.Console, "--console", ConsoleKind.Serial),
            Rng = ParseBool(s.Rng, "--rng"),
            LogLevel = ParseEnum(s.LogLevel, "--log-level", LogLevel.Info),
            HostProfile = ParseEnum(s.HostProfile, "--host-profile", HostProfileChoice.Auto),
            Media = media,
        };
    }

    /// <summary>Checks a <c>--media</c> spec now, so a typo is one line before any VM exists.</summary>
    private static string CheckMediaSpec(string spec)
    {
        if (!Vmm.Devices.VirtioMedia.Backends.MediaBackendSpecs.TryParse(spec, out _, out string? error))
        {
            throw new UsageException($"--media {spec}: {error}");
        }
        return spec;
    }

    private static void CheckReadableFile(string path, string what)
    {
        if (Directory.Exists(path))
        {
            throw new UsageException($"{what} '{path}' is a directory, not a file");
        }
        if (!File.Exists(path))
        {
            throw new UsageException($"{what} file '{path}' does not exist");
        }
        try
        {
            using FileStream f = File.OpenRead(path);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new UsageException($"cannot read {what} file '{path}': {e.Message}");
        }
    }

    internal static int ParseInt(string? text, string flag, string what, int defaultValue, int min, int max)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return defaultValue;
        }
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value))
        {
            throw new UsageException($"{flag}: '{text}' is not a whole number of {what}");
        }
        if (value < min || value > max)
        {
            throw new UsageException($"{flag}: {value} is out of range ({min} to {max} {what})");
        }
        return value;
    }

    internal static T ParseEnum<T>(string? text, string flag, T defaultValue) where T : struct, Enum
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return defaultValue;
        }
        if (Enum.TryParse(text.Trim(), ignoreCase: true, out T value) && Enum.IsDefined(value) && !char.IsDigit(text.Trim()[0]))
        {
            return value;
        }
        throw new UsageException($"{flag}: '{text}' is not one of: {string.Join(", ", Enum.GetNames<T>()).ToLowerInvariant()}");
    }

    internal static bool ParseBool(string? text, string flag)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        return text.Trim().ToLowerInvariant() switch
        {
            "true" or "on" or "yes" or "1" => true,
            "false" or "off" or "no" or "0" => false,
            _ => throw new UsageException($"{flag}: '{text}' is not true or false"),
        };
    }
}
