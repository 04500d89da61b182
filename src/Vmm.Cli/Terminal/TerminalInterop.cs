using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vmm.Core.Interop;

namespace Vmm.Cli.Terminal;

/// <summary>
/// The libc terminal calls the console needs (glibc); poll and read come from Core's <see cref="Libc"/>.
/// Struct layouts and constants were checked against glibc's headers with a C program built for x86_64 and for
/// aarch64 (Debian's cross toolchain; identical: sizeof(struct termios) = 60, c_cc at 17, c_ispeed at 52;
/// sizeof(struct pollfd) = 8); the static
/// constructor re-checks the sizes at run time so a wrong layout fails loudly instead of corrupting the stack.
/// </summary>
internal static unsafe partial class TerminalInterop
{
    private const string Lib = "libc";

    public const int StdinFd = 0;
    public const int TCSANOW = 0;

    // c_iflag
    public const uint IGNBRK = 0x1, BRKINT = 0x2, PARMRK = 0x8, ISTRIP = 0x20, INLCR = 0x40, IGNCR = 0x80,
        ICRNL = 0x100, IXON = 0x400;
    // c_oflag
    public const uint OPOST = 0x1;
    // c_cflag
    public const uint CSIZE = 0x30, CS8 = 0x30, PARENB = 0x100;
    // c_lflag
    public const uint ISIG = 0x1, ICANON = 0x2, ECHO = 0x8, ECHONL = 0x40, IEXTEN = 0x8000;
    // c_cc indices
    public const int VTIME = 5, VMIN = 6;


    public const int TermiosSize = 60;
    public const int PollFdSize = 8;

    static TerminalInterop()
    {
        if (Unsafe.SizeOf<Termios>() != TermiosSize || Unsafe.SizeOf<Libc.PollFd>() != PollFdSize)
        {
            throw new PlatformNotSupportedException(
                $"termios/pollfd layout mismatch ({Unsafe.SizeOf<Termios>()}/{Unsafe.SizeOf<Libc.PollFd>()} bytes)");
        }
    }

    /// <summary>struct termios of glibc on x86_64 and aarch64 alike (NCCS = 32).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Termios
    {
        public uint InputFlags;
        public uint OutputFlags;
        public uint ControlFlags;
        public uint LocalFlags;
        public byte LineDiscipline;
        public fixed byte ControlChars[32];
        public uint InputSpeed;
        public uint OutputSpeed;
    }

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int isatty(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int tcgetattr(int fd, Termios* termios);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int tcsetattr(int fd, int optionalActions, Termios* termios);

    public static bool IsTerminal(int fd) => isatty(fd) == 1;

    /// <summary>The raw-mode variant of <paramref name="saved"/>: cfmakeraw's input, control and local flags,
    /// but output post-processing (OPOST, so '\n' still prints as CR LF) left as it was.</summary>
    public static Termios MakeRawKeepingOutput(Termios saved)
    {
        Termios raw = saved;
        raw.InputFlags &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
        raw.LocalFlags &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
        raw.ControlFlags &= ~(CSIZE | PARENB);
        raw.ControlFlags |= CS8;
        raw.ControlChars[VMIN] = 1;
        raw.ControlChars[VTIME] = 0;
        return raw;
    }
}
