using System.Runtime.InteropServices;
using Vmm.Core.Events;
using Vmm.Devices.Legacy.Serial;
using static Vmm.Cli.Terminal.TerminalInterop;
using static Vmm.Core.Interop.Libc;

namespace Vmm.Cli.Terminal;

/// <summary>
/// Connects the VMM's stdin/stdout to the serial console, like QEMU's <c>-serial mon:stdio</c>.
/// <list type="bullet">
/// <item>stdin a TTY: raw input mode (no echo, no line editing, Ctrl-C goes to the guest; output post-processing
/// kept so '\n' still prints as CR LF), and the escape keys Ctrl-A x (quit), Ctrl-A h (help on stderr),
/// Ctrl-A Ctrl-A (a literal Ctrl-A). The terminal is restored on every exit path: <see cref="Dispose"/>,
/// <see cref="AppDomain.ProcessExit"/>, an unhandled exception, and SIGINT/SIGTERM/SIGQUIT/SIGHUP (the handler
/// restores and lets the signal's default action proceed).</item>
/// <item>stdin not a TTY (pipe, file, /dev/null, CI): no raw mode and, by default, no escape keys, so input
/// bytes reach the guest unchanged; EOF simply ends input, the VM keeps running.</item>
/// </list>
/// A background reader thread polls stdin and a wake-up eventfd, and hands each chunk to the input callback on
/// that thread; a callback that blocks (e.g. <see cref="ConsoleUart.Enqueue"/> while the guest does not read)
/// just stops reading stdin, which is the backpressure the terminal or pipe sees.
/// </summary>
public sealed unsafe class StdioConsole : IDisposable
{
    private const int ReadChunkSize = 4096;

    private readonly Lock _lock = new();
    private readonly bool _escapesEnabled;
    private readonly ConsoleEscapeParser _parser;
    private readonly List<PosixSignalRegistration> _signalRegistrations = [];
    private RawTerminalMode? _rawMode;
    private EventFd? _wake;
    private Thread? _reader;
    private Action<ReadOnlySpan<byte>>? _input;
    private Action? _quitRequested;
    private bool _disposed;

    /// <param name="escapeKeys">Whether Ctrl-A commands are recognised; null = only when stdin is a TTY.</param>
    /// <param name="escapeByte">The escape key (Ctrl-A by default).</param>
    public StdioConsole(bool? escapeKeys = null, byte escapeByte = ConsoleEscapeParser.DefaultEscapeByte)
    {
        StdinIsTerminal = IsTerminal(StdinFd);
        _escapesEnabled = escapeKeys ?? StdinIsTerminal;
        _parser = new ConsoleEscapeParser(escapeByte);
    }

    /// <summary>True when stdin is a terminal (raw mode and escape keys apply).</summary>
    public bool StdinIsTerminal { get; }

    /// <summary>True while the terminal is in raw mode.</summary>
    public bool RawModeActive => _rawMode?.IsActive ?? false;

    /// <summary>True once stdin reached end-of-file (input stopped; the VM goes on).</summary>
    public bool InputEnded { get; private set; }

    /// <summary>The stream to hand to the UART as its output sink (unbuffered stdout; the UART batches).</summary>
    public static Stream OpenOutput() => Console.OpenStandardOutput();

    /// <summary>
    /// Enters raw mode (if stdin is a TTY) and starts the reader thread. <paramref name="input"/> receives guest
    /// bytes on the reader thread (the span is valid only during the call); <paramref name="quitRequested"/>
    /// runs once, on the reader thread, after Ctrl-A x.
    /// </summary>
    public void Start(Action<ReadOnlySpan<byte>> input, Action quitRequested)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(quitRequested);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_reader is not null)
            {
                throw new InvalidOperationException("the console is already started");
            }
            _input = input;
            _quitRequested = quitRequested;
            _wake = new EventFd();
            if (StdinIsTerminal)
            {
                // Hooks first, so that no window exists in which raw mode is on and an exit path is unguarded.
                AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
                AppDomain.CurrentDomain.UnhandledException += OnUnhandledException;
                foreach (PosixSignal signal in (ReadOnlySpan<PosixSignal>)
                         [PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGQUIT, PosixSignal.SIGHUP])
                {
                    _signalRegistrations.Add(PosixSignalRegistration.Create(signal, OnTerminatingSignal));
                }
                if (!OperatingSystem.IsWindows())
                {
                    _signalRegistrations.Add(PosixSignalRegistration.Create(PosixSignal.SIGCONT, OnContinue));
                }
                _rawMode = RawTerminalMode.Enter(StdinFd);
            }
            _reader = new Thread(ReadLoop) { IsBackground = true, Name = "vmm-stdin" };
            _reader.Start();
        }
    }

    /// <summary>Stops the reader thread and restores the terminal.</summary>
    public void Dispose()
    {
        Thread? reader;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            reader = _reader;
            _wake?.Signal();
        }
        // The reader may be blocked inside the input callback (UART backpressure); do not wait for it forever.
        if (reader is not null && reader != Thread.CurrentThread)
        {
            reader.Join(TimeSpan.FromSeconds(1));
        }
        RestoreTerminal();
        foreach (PosixSignalRegistration registration in _signalRegistrations)
        {
            registration.Dispose();
        }
        _signalRegistrations.Clear();
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        AppDomain.CurrentDomain.UnhandledException -= OnUnhandledException;
        if (reader is null || !reader.IsAlive)
        {
            _wake?.Dispose();
        }
    }

    private void RestoreTerminal() => _rawMode?.Restore();

    private void OnProcessExit(object? sender, EventArgs e) => RestoreTerminal();

    private void OnUnhandledException(object? sender, UnhandledExceptionEventArgs e) => RestoreTerminal();

    private void OnTerminatingSignal(PosixSignalContext context) => RestoreTerminal();

    private void OnContinue(PosixSignalContext context)
    {
        // Back from a stop (kill -STOP / fg): the shell has put the terminal in cooked mode again.
        lock (_lock)
        {
            if (!_disposed && _rawMode is { } mode)
            {
                try
                {
                    mode.Apply();
                }
                catch (IOException)
                {
                    // The terminal went away; nothing to put back later either.
                }
            }
        }
    }

    private void ReadLoop()
    {
        byte[] buffer = new byte[ReadChunkSize];
        byte[] forward = new byte[ReadChunkSize];
        int wakeFd = _wake!.Handle.Fd;
        PollFd* fds = stackalloc PollFd[2];
        try
        {
            while (true)
            {
                fds[0] = new PollFd { Fd = StdinFd, Events = POLLIN };
                fds[1] = new PollFd { Fd = wakeFd, Events = POLLIN };
                // Safe: fds points at two stack pollfd entries that outlive the call.
                int ready = poll(fds, 2, -1);
                if (ready < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EINTR)
                    {
                        continue;
                    }
                    ReportInputError("poll", Marshal.GetLastPInvokeError());
                    return;
                }
                if (fds[1].ReturnedEvents != 0)
                {
                    return; // Dispose
                }
                if ((fds[0].ReturnedEvents & POLLNVAL) != 0)
                {
                    InputEnded = true; // stdin closed
                    return;
                }
                if (fds[0].ReturnedEvents == 0)
                {
                    continue;
                }
                nint n;
                fixed (byte* p = buffer)
                {
                    // Safe: reads at most buffer.Length bytes into the pinned buffer.
                    n = read(StdinFd, p, (nuint)buffer.Length);
                }
                if (n == 0)
                {
                    InputEnded = true; // EOF ends input only; the VM keeps running
                    return;
                }
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno is EINTR or EAGAIN)
                    {
                        continue;
                    }
                    ReportInputError("read", errno);
                    return;
                }
                if (!Deliver(buffer.AsSpan(0, (int)n), forward))
                {
                    return; // quit requested
                }
            }
        }
        catch (Exception e)
        {
            // A failing input callback must not take the VMM down from a background thread.
            RestoreTerminal();
            Console.Error.WriteLine($"vmm: console input stopped: {e.Message}");
        }
    }

    /// <returns>False when the user asked to quit.</returns>
    private bool Deliver(ReadOnlySpan<byte> chunk, byte[] forward)
    {
        if (!_escapesEnabled)
        {
            _input!(chunk);
            return true;
        }
        while (!chunk.IsEmpty)
        {
            ConsoleCommand command = _parser.Parse(chunk, forward, out int consumed, out int written);
            if (written > 0)
            {
                _input!(forward.AsSpan(0, written));
            }
            chunk = chunk[consumed..];
            switch (command)
            {
                case ConsoleCommand.Help:
                    Console.Error.Write(_parser.HelpText);
                    break;
                case ConsoleCommand.Quit:
                    _quitRequested!();
                    return false;
            }
        }
        return true;
    }

    private static void ReportInputError(string call, int errno) =>
        Console.Error.WriteLine($"vmm: console input stopped: {call}: {Marshal.GetPInvokeErrorMessage(errno)}");
}
