namespace Vmm.Core.Platform;

/// <summary>What a device may ask of the VM as a whole: stop it (debug-exit port, i8042 reset, guest reboot).</summary>
public interface IVmControl
{
    /// <summary>Asks every vCPU to stop; the VMM then exits with <paramref name="exitCode"/>.
    /// The first request wins; later ones are ignored.</summary>
    void RequestExit(int exitCode, string reason);
}
