namespace Vmm.Core.Boot;

/// <summary>
/// The kernel file is not something we can boot: not a Linux kernel, a truncated or corrupt header, a payload that
/// does not decompress, a hostile ELF. The message is one sentence meant for the user (the CLI prints it alone).
/// </summary>
public sealed class KernelImageException : Exception
{
    public KernelImageException(string message) : base(message) { }
    public KernelImageException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// The kernel is fine but the boot cannot be set up as asked: it does not fit in guest RAM, the initrd does not fit,
/// the command line is too long, a requested entry method is not available. One sentence, meant for the user.
/// </summary>
public sealed class BootException : Exception
{
    public BootException(string message) : base(message) { }
    public BootException(string message, Exception inner) : base(message, inner) { }
}
