using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace Vmm.Cli.Configuration;

/// <summary>
/// Reads a JSON config file into <see cref="VmSettings"/>. Every flag of <c>vmm run</c> has a key of the same name
/// without dashes (<c>--log-level</c> is <c>logLevel</c>); unknown keys are an error so a typo is not silently ignored.
/// </summary>
internal static class ConfigFile
{
    private static readonly string[] KnownKeys =
        ["kernel", "initrd", "cmdline", "mem", "cpus", "boot", "console", "rng", "logLevel", "media", "hostProfile"];

    public static VmSettings Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new UsageException($"config file '{path}' does not exist");
        }
        IConfigurationRoot root;
        try
        {
            root = new ConfigurationBuilder().AddJsonFile(full, optional: false, reloadOnChange: false).Build();
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            string reason = e.InnerException?.Message ?? e.Message;
            throw new UsageException($"config file '{path}' is not valid JSON: {reason}");
        }
        foreach (IConfigurationSection section in root.GetChildren())
        {
            if (Array.FindIndex(KnownKeys, k => string.Equals(k, section.Key, StringComparison.OrdinalIgnoreCase)) < 0)
            {
                throw new UsageException($"config file '{path}': unknown key \"{section.Key}\" (known: {string.Join(", ", KnownKeys)})");
            }
            // Only "media" takes a list, of strings; anything else nested would make the binder throw.
            bool isMedia = string.Equals(section.Key, "media", StringComparison.OrdinalIgnoreCase);
            foreach (IConfigurationSection child in section.GetChildren())
            {
                if (!isMedia || child.Value is null)
                {
                    throw new UsageException(isMedia
                        ? $"config file '{path}': \"media\" must be a string or a list of strings"
                        : $"config file '{path}': \"{section.Key}\" must be a single value, not a list or an object");
                }
            }
        }
        var settings = new VmSettings();
        try
        {
            root.Bind(settings);
        }
        catch (InvalidOperationException e)
        {
            // A value of the wrong kind ("mem": "lots"): the binder names the key and the type it wanted.
            throw new UsageException($"config file '{path}': {e.Message}");
        }
        // "media" may be a single string as well as a list.
        IConfigurationSection media = root.GetSection("media");
        if (media.Value is { } single)
        {
            settings.Media = [single];
        }
        // Paths in the file are relative to the file, not to the working directory.
        string dir = Path.GetDirectoryName(full)!;
        settings.Kernel = Rebase(settings.Kernel, dir);
        settings.Initrd = Rebase(settings.Initrd, dir);
        return settings;
    }

    private static string? Rebase(string? path, string dir) =>
        string.IsNullOrEmpty(path) || Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(dir, path));
}
