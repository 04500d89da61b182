using System.Runtime.InteropServices;
using Vmm.Core.Interop;
using static Vmm.Cli.Terminal.TerminalInterop;

namespace Vmm.Cli.Terminal;

/// <summary>
/// Puts a terminal into raw input mode and puts it back exactly as it was — once, from whichever exit path gets
/// there first (dispose, process exit, unhandled exception, a terminating signal). Every path calls
/// <see cref="Restore"/>, which is idempotent and thread-safe.
/// </summary>
internal sealed unsafe class RawTerminalMode : IDisposable
{
    private readonly Lock _lock = new();
    private readonly int _fd;
    private readonly Termios _saved;
    private readonly Termios _raw;
    private bool _active;

    private RawTerminalMode(int fd, Termios saved)
    {
        _fd = fd;
        _saved = saved;
        _raw = MakeRawKeepingOutput(saved);
    }

    /// <summary>Switches <paramref name="fd"/> to raw mode; throws <see cref="ErrnoException"/> on failure.</summary>
    public static RawTerminalMode Enter(int fd)
    {
        Termios saved;
        // Safe: tcgetattr writes one struct termios (size checked in TerminalInterop's static constructor) to a local.
        if (tcgetattr(fd, &saved) != 0)
        {
            throw ErrnoException.FromLastError("tcgetattr");
        }
        var mode = new RawTerminalMode(fd, saved);
        mode.Apply();
        return mode;
    }

    public bool IsActive
    {
        get
        {
            lock (_lock)
            {
                return _active;
            }
        }
    }

    /// <summary>(Re)applies raw mode, e.g. after SIGCONT when a shell may have reset the terminal.</summary>
    public void Apply()
    {
        lock (_lock)
        {
            Termios raw = _raw;
            // Safe: tcsetattr reads one struct termios from a local copy.
            if (tcsetattr(_fd, TCSANOW, &raw) != 0)
            {
                throw ErrnoException.FromLastError("tcsetattr");
            }
            _active = true;
        }
    }

    /// <summary>Puts back the saved settings if raw mode is on. Never throws: it runs on exit and signal paths.</summary>
    public void Restore()
    {
        lock (_lock)
        {
            if (!_active)
            {
                return;
            }
            _active = false;
            Termios saved = _saved;
            // Safe: tcsetattr reads one struct termios from a local copy. TCSANOW, not TCSADRAIN: a blocked stdout
            // must not hang the exit path.
            if (tcsetattr(_fd, TCSANOW, &saved) != 0)
            {
                Console.Error.WriteLine($"vmm: could not restore the terminal: {Marshal.GetLastPInvokeErrorMessage()}");
            }
        }
    }

    public void Dispose() => Restore();
}
