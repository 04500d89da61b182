namespace Vmm.Cli;

/// <summary>The VM could not be started (no KVM access, a kernel that is not a kernel, too little memory…):
/// printed as one line, exit code 1.</summary>
internal sealed class VmStartException(string message, Exception? inner = null) : Exception(message, inner);
