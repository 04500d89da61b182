using System.Buffers.Binary;
using Vmm.Core.Bus;
using Vmm.Core.Platform;

namespace Vmm.Devices.Legacy.DebugExit;

/// <summary>
/// An isa-debug-exit-like port (at <c>X86Layout.DebugExitPort</c>, 0x501, length <see cref="PortCount"/>): a 1-,
/// 2- or 4-byte write of V at offset 0 asks the VM to stop and the VMM to exit with code V exactly — unlike
/// QEMU's device, which exits with (V &lt;&lt; 1) | 1. Test guests end with e.g. <c>outb $0, $0x501</c> for success.
/// </summary>
/// <remarks>
/// V is passed to <see cref="IVmControl.RequestExit"/> unchanged (a 32-bit value above int.MaxValue wraps to a
/// negative int); a process exit status keeps only its low 8 bits, so guests should write 0–255. Writes at other
/// offsets or of width 8 are ignored. Reads return all-ones, as an unclaimed ISA port would, so a guest probing
/// the port sees nothing there and nothing happens.
/// </remarks>
public sealed class DebugExitDevice : IBusDevice
{
    /// <summary>Range to insert so that a 4-byte write at the base fits (IoBus rejects accesses that overrun).</summary>
    public const int PortCount = 4;

    private readonly IVmControl _vmControl;

    public DebugExitDevice(IVmControl vmControl)
    {
        ArgumentNullException.ThrowIfNull(vmControl);
        _vmControl = vmControl;
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data) => data.Fill(0xFF);

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset != 0)
        {
            return;
        }
        uint value;
        switch (data.Length)
        {
            case 1:
                value = data[0];
                break;
            case 2:
                value = BinaryPrimitives.ReadUInt16LittleEndian(data);
                break;
            case 4:
                value = BinaryPrimitives.ReadUInt32LittleEndian(data);
                break;
            default:
                return;
        }
        int exitCode = unchecked((int)value);
        _vmControl.RequestExit(exitCode, $"guest wrote {value} to the debug-exit port");
    }
}
