namespace Vmm.Devices.Legacy.Serial;

/// <summary>What the user asked for with an escape sequence.</summary>
public enum ConsoleCommand
{
    /// <summary>No command; the chunk was forwarded (or the parser waits for the key after the escape byte).</summary>
    None,

    /// <summary>Escape then 'h' or '?': print the key help (to stderr).</summary>
    Help,

    /// <summary>Escape then 'x': stop the VMM.</summary>
    Quit,
}

/// <summary>
/// Splits console keystrokes into bytes for the guest and escape commands, like QEMU's <c>-serial mon:stdio</c>:
/// Ctrl-A x quits, Ctrl-A h (or ?) asks for help, Ctrl-A Ctrl-A sends one Ctrl-A to the guest, and Ctrl-A followed
/// by any other key sends nothing (QEMU swallows unknown commands too). Pure and allocation-free; the escape
/// state carries across calls, so a sequence split over two reads still works.
/// </summary>
public sealed class ConsoleEscapeParser
{
    /// <summary>Ctrl-A.</summary>
    public const byte DefaultEscapeByte = 0x01;

    private bool _afterEscape;

    public ConsoleEscapeParser(byte escapeByte = DefaultEscapeByte) => EscapeByte = escapeByte;

    public byte EscapeByte { get; }

    /// <summary>True when the last byte seen was an unconsumed escape byte.</summary>
    public bool AwaitingCommandKey => _afterEscape;

    /// <summary>
    /// Consumes <paramref name="input"/> up to and including the first command, copying the bytes meant for the
    /// guest into <paramref name="forward"/>. Call again with <c>input[consumed..]</c> after handling a command.
    /// </summary>
    /// <param name="forward">Receives guest bytes; at least as long as <paramref name="input"/> (never more is written).</param>
    /// <param name="consumed">Input bytes processed.</param>
    /// <param name="written">Bytes written to <paramref name="forward"/>.</param>
    /// <returns>The command that ended the scan, or <see cref="ConsoleCommand.None"/> when all input was consumed.</returns>
    public ConsoleCommand Parse(ReadOnlySpan<byte> input, Span<byte> forward, out int consumed, out int written)
    {
        if (forward.Length < input.Length)
        {
            throw new ArgumentException("forward must be at least as long as input", nameof(forward));
        }
        written = 0;
        for (int i = 0; i < input.Length; i++)
        {
            byte b = input[i];
            if (!_afterEscape)
            {
                if (b == EscapeByte)
                {
                    _afterEscape = true;
                }
                else
                {
                    forward[written++] = b;
                }
                continue;
            }
            _afterEscape = false;
            if (b == EscapeByte)
            {
                forward[written++] = b;
                continue;
            }
            ConsoleCommand command = b switch
            {
                (byte)'x' or (byte)'X' => ConsoleCommand.Quit,
                (byte)'h' or (byte)'H' or (byte)'?' => ConsoleCommand.Help,
                _ => ConsoleCommand.None,
            };
            if (command != ConsoleCommand.None)
            {
                consumed = i + 1;
                return command;
            }
        }
        consumed = input.Length;
        return ConsoleCommand.None;
    }

    /// <summary>The help text for <see cref="ConsoleCommand.Help"/>, naming the configured escape key.</summary>
    public string HelpText
    {
        get
        {
            string key = EscapeByte is >= 1 and <= 26 ? $"C-{(char)('a' + EscapeByte - 1)}" : $"0x{EscapeByte:x2}";
            return $"{key} h    print this help\n{key} x    exit the VMM\n{key} {key}  send {key} to the guest\n";
        }
    }
}
