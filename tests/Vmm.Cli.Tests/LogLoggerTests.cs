using Microsoft.Extensions.Logging;
using Vmm.Cli.Diagnostics;

namespace Vmm.Cli.Tests;

/// <summary>The device libraries' ILogger lines reach the VMM's log with its level and format.</summary>
public sealed class LogLoggerTests
{
    [Fact]
    public void Lines_below_the_log_level_are_dropped_and_the_rest_carry_the_VMM_s_prefix()
    {
        var text = new StringWriter();
        ILogger logger = new LogLogger(new Log(Diagnostics.LogLevel.Warn, text));
        Assert.False(logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Debug));
        Assert.True(logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Warning));
        logger.LogDebug("not shown");
        logger.LogError("virtio-media frame clock failed: boom");
        logger.LogWarning("copying frames");
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Matches(@"^\[ *\d+\.\d{3}\] vmm error: virtio-media frame clock failed: boom$", lines[0]);
        Assert.EndsWith("vmm warn: copying frames", lines[1]);
    }
}
