namespace Vmm.Cli.Diagnostics;

internal enum LogLevel
{
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Off,
}

/// <summary>
/// The VMM's log: lines on stderr (stdout belongs to the guest console), each prefixed with the time since the
/// VMM started so boot phases can be read off directly.
/// </summary>
internal sealed class Log(LogLevel level, TextWriter writer)
{
    private static readonly long StartTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
    private readonly Lock _lock = new();

    public LogLevel Level { get; } = level;

    public static TimeSpan SinceStart => System.Diagnostics.Stopwatch.GetElapsedTime(StartTimestamp);

    public bool IsEnabled(LogLevel l) => l >= Level && Level != LogLevel.Off;

    public void Write(LogLevel l, string message)
    {
        if (!IsEnabled(l))
        {
            return;
        }
        string line = $"[{SinceStart.TotalSeconds,8:F3}] vmm {l.ToString().ToLowerInvariant()}: {message}";
        lock (_lock)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }

    public void Debug(string m) => Write(LogLevel.Debug, m);
    public void Info(string m) => Write(LogLevel.Info, m);
    public void Warn(string m) => Write(LogLevel.Warn, m);
    public void Error(string m) => Write(LogLevel.Error, m);
}
