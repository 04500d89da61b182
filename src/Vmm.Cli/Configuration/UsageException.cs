namespace Vmm.Cli.Configuration;

/// <summary>Bad user input (a flag, a config file, a missing file): printed as one line, exit code 2, no stack trace.</summary>
internal sealed class UsageException(string message) : Exception(message);
