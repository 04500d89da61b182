using System.Text;
using Vmm.Core.Arch.X86;

namespace Vmm.Core.Boot;

/// <summary>
/// The kernel command line, built from two parts with one rule:
/// <list type="number">
/// <item><b>User part</b>: the user's <c>--cmdline</c> when given (it <i>replaces</i> the default entirely),
/// otherwise <see cref="DefaultUserParameters"/>.</item>
/// <item><b>VMM part</b>: parameters the VMM requires whatever the user says (e.g. the host-profile CPU-feature
/// masks on a PVM host). They are <i>always appended</i> after the user's kernel parameters. For parameters the
/// kernel reads once, the last occurrence wins, so a VMM-required value overrides a conflicting user value.</item>
/// </list>
/// Everything after a standalone <c>--</c> in the user's line is for init, not the kernel (init/main.c); the VMM part
/// is therefore inserted <i>before</i> that <c>--</c>, and the init arguments are kept verbatim at the end.
/// <para>
/// Tokens follow the kernel's own splitting (lib/cmdline.c next_arg): whitespace separates parameters except inside
/// double quotes. NUL bytes and unbalanced quotes are rejected. The length limit (without the terminating NUL) is
/// checked when the line is written: <c>cmdline_size</c> from a bzImage header, else <see cref="MaxLength"/>.
/// </para>
/// </summary>
public sealed class KernelCmdline
{
    /// <summary>
    /// The default user part. Each parameter, and why:
    /// <list type="bullet">
    /// <item><c>console=ttyS0</c> — kernel messages on COM1, the VMM's only console.</item>
    /// <item><c>reboot=k</c> — reboot through the i8042 keyboard controller (pulse of the reset line), which the VMM
    /// emulates and turns into a clean exit; the default (ACPI/EFI/triple fault) has nothing to talk to here.</item>
    /// <item><c>panic=-1</c> — on panic, reboot at once (→ VMM exit) instead of hanging forever.</item>
    /// <item><c>8250.nr_uarts=1</c> — register one legacy UART; probing the other three is wasted port I/O exits.</item>
    /// <item><c>i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd</c> — our i8042 is a reset line, not a keyboard:
    /// skip the AUX/mouse port, multiplexer and PnP probes and the LED handshake (as Firecracker does); every probe is
    /// exits and timeouts. Dotted parameters of drivers that are not built in are ignored by the kernel.</item>
    /// </list>
    /// </summary>
    public const string DefaultUserParameters =
        "console=ttyS0 reboot=k panic=-1 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";

    /// <summary>The arm64 default: the PL011 console (ttyAMA0) and reboot on panic; PSCI needs no options.</summary>
    public const string Arm64DefaultUserParameters = "console=ttyAMA0 panic=-1";

    /// <summary>Longest line (without NUL) when the kernel does not say: the command-line area at
    /// <see cref="X86Layout.CmdlineAddress"/> is <see cref="X86Layout.CmdlineMaxSize"/> bytes, NUL included.</summary>
    public const int MaxLength = (int)X86Layout.CmdlineMaxSize - 1;

    /// <summary>COMMAND_LINE_SIZE of x86 kernels (2048, NUL included): the kernel silently truncates beyond it.</summary>
    public const int TypicalKernelLimit = 2047;

    private readonly List<string> _user;
    private readonly List<string> _vmm = [];
    private readonly string? _initArguments;

    private KernelCmdline(List<string> user, string? initArguments)
    {
        _user = user;
        _initArguments = initArguments;
    }

    /// <summary>A command line whose user part is <paramref name="userCmdline"/>, or the default when null.
    /// An empty string means "no user parameters at all".</summary>
    public static KernelCmdline Create(string? userCmdline = null)
    {
        string text = userCmdline ?? DefaultUserParameters;
        List<string> tokens = Tokenize(text, out int initStart);
        string? init = initStart >= 0 ? text[initStart..].Trim() : null;
        return new KernelCmdline(tokens, init);
    }

    /// <summary>The default user part.</summary>
    public static KernelCmdline Default() => Create(null);

    /// <summary>The user part as it will be written (parameters separated by single spaces).</summary>
    public string UserPart => string.Join(' ', _user);
    /// <summary>The VMM-required part.</summary>
    public string VmmPart => string.Join(' ', _vmm);
    /// <summary>Arguments after <c>--</c>, passed to init; null when there is no <c>--</c>.</summary>
    public string? InitArguments => _initArguments;

    /// <summary>Appends VMM-required parameters (one or more, whitespace-separated, quotes allowed).</summary>
    public KernelCmdline AddVmmParameters(string parameters)
    {
        List<string> tokens = Tokenize(parameters, out int initStart);
        if (initStart >= 0)
        {
            throw new BootException("VMM-required kernel parameters must not contain '--' (that would hand them to init)");
        }
        _vmm.AddRange(tokens);
        return this;
    }

    /// <summary>Appends one VMM-required <c>key=value</c> parameter; a value with spaces is quoted.</summary>
    public KernelCmdline AddVmmParameter(string key, string value)
    {
        if (key.Length == 0 || key.AsSpan().IndexOfAny(" \t\n\"=\0") >= 0)
        {
            throw new BootException($"'{key}' is not a valid kernel parameter name");
        }
        if (value.Contains('"') || value.Contains('\0'))
        {
            throw new BootException($"kernel parameter {key} has a value with a quote or NUL, which the kernel cannot parse");
        }
        _vmm.Add(value.AsSpan().IndexOfAny(" \t\n") >= 0 ? $"{key}=\"{value}\"" : $"{key}={value}");
        return this;
    }

    /// <summary>Whether a parameter (<c>name</c> or <c>name=...</c>) is present in either part.</summary>
    public bool Contains(string name)
    {
        foreach (string t in _user)
        {
            if (t == name || t.StartsWith(name + "=", StringComparison.Ordinal))
            {
                return true;
            }
        }
        foreach (string t in _vmm)
        {
            if (t == name || t.StartsWith(name + "=", StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The full line: user part, VMM part, then <c>-- init arguments</c> if any.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (string t in _user)
        {
            Append(sb, t);
        }
        foreach (string t in _vmm)
        {
            Append(sb, t);
        }
        if (_initArguments is not null)
        {
            Append(sb, "--");
            if (_initArguments.Length > 0)
            {
                Append(sb, _initArguments);
            }
        }
        return sb.ToString();
    }

    /// <summary>The line as bytes with its terminating NUL; throws <see cref="BootException"/> when it is longer than
    /// <paramref name="maxLength"/> bytes (NUL not counted).</summary>
    public byte[] ToBytes(int maxLength)
    {
        string line = ToString();
        int length = Encoding.UTF8.GetByteCount(line);
        if (length > maxLength)
        {
            throw new BootException($"the kernel command line is {length} bytes; this kernel accepts at most {maxLength}");
        }
        var bytes = new byte[length + 1];
        Encoding.UTF8.GetBytes(line, bytes);
        return bytes;
    }

    private static void Append(StringBuilder sb, string token)
    {
        if (sb.Length > 0)
        {
            sb.Append(' ');
        }
        sb.Append(token);
    }

    /// <summary>Splits like the kernel: whitespace outside double quotes separates; returns the tokens before a
    /// standalone <c>--</c> and the index just after it (or -1).</summary>
    private static List<string> Tokenize(string text, out int initStart)
    {
        if (text.Contains('\0'))
        {
            throw new BootException("the kernel command line contains a NUL byte");
        }
        var tokens = new List<string>();
        initStart = -1;
        int i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }
            if (i >= text.Length)
            {
                break;
            }
            int start = i;
            bool quoted = false;
            while (i < text.Length && (quoted || !char.IsWhiteSpace(text[i])))
            {
                if (text[i] == '"')
                {
                    quoted = !quoted;
                }
                i++;
            }
            if (quoted)
            {
                throw new BootException("the kernel command line has an unbalanced double quote");
            }
            string token = text[start..i];
            if (token == "--")
            {
                initStart = i;
                return tokens;
            }
            tokens.Add(token);
        }
        return tokens;
    }
}
