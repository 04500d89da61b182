using Microsoft.Extensions.Logging;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace Vmm.Cli.Diagnostics;

/// <summary>
/// The device libraries log through <see cref="ILogger"/> (Microsoft.Extensions.Logging's seam) and know nothing of
/// where lines go; this hands their lines to the VMM's own <see cref="Log"/>, so they share its level
/// (<c>--log-level</c>), its stderr and its time stamps.
/// </summary>
internal sealed class LogLogger(Log log) : ILogger
{
    public bool IsEnabled(MsLogLevel logLevel) => logLevel != MsLogLevel.None && log.IsEnabled(Map(logLevel));

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public void Log<TState>(MsLogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }
        string message = formatter(state, exception);
        log.Write(Map(logLevel), exception is null ? message : $"{message}: {exception.GetType().Name}: {exception.Message}");
    }

    private static LogLevel Map(MsLogLevel level) => level switch
    {
        MsLogLevel.Trace => LogLevel.Trace,
        MsLogLevel.Debug => LogLevel.Debug,
        MsLogLevel.Information => LogLevel.Info,
        MsLogLevel.Warning => LogLevel.Warn,
        _ => LogLevel.Error, // Error and Critical
    };
}
