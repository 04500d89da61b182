using Vmm.Core.Platform;

namespace Vmm.Devices.Legacy.Tests.TestDoubles;

/// <summary>Records exit requests (all of them, not only the first, so tests can see duplicates).</summary>
internal sealed class RecordingVmControl : IVmControl
{
    private readonly Lock _lock = new();
    private readonly List<(int ExitCode, string Reason)> _requests = [];

    public (int ExitCode, string Reason)[] Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    public void RequestExit(int exitCode, string reason)
    {
        lock (_lock)
        {
            _requests.Add((exitCode, reason));
        }
    }
}
