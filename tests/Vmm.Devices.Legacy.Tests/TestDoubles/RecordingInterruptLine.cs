using Vmm.Core.Platform;

namespace Vmm.Devices.Legacy.Tests.TestDoubles;

/// <summary>Records what a device does to its interrupt line (thread-safe).</summary>
internal sealed class RecordingInterruptLine : IInterruptLine
{
    private readonly Lock _lock = new();
    private readonly List<bool> _levels = [];
    private int _triggers;

    public int Gsi => 4;

    public bool Level
    {
        get
        {
            lock (_lock)
            {
                return _levels.Count > 0 && _levels[^1];
            }
        }
    }

    /// <summary>Every SetLevel value in order.</summary>
    public bool[] Levels
    {
        get
        {
            lock (_lock)
            {
                return [.. _levels];
            }
        }
    }

    /// <summary>Number of 0→1 transitions, i.e. interrupts an edge-triggered controller would take.</summary>
    public int RisingEdges
    {
        get
        {
            lock (_lock)
            {
                int edges = 0;
                bool previous = false;
                foreach (bool level in _levels)
                {
                    if (level && !previous)
                    {
                        edges++;
                    }
                    previous = level;
                }
                return edges;
            }
        }
    }

    public int Triggers => Volatile.Read(ref _triggers);

    public void Trigger() => Interlocked.Increment(ref _triggers);

    public void SetLevel(bool asserted)
    {
        lock (_lock)
        {
            _levels.Add(asserted);
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _levels.Clear();
        }
    }
}
