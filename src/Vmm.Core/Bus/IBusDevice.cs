namespace Vmm.Core.Bus;

/// <summary>
/// A device on the port-I/O or MMIO bus. <c>offset</c> is relative to the base the device was inserted
/// at; <c>data.Length</c> is the access width (1, 2, 4 or 8). Called on vCPU threads, possibly concurrently:
/// a device guards its own state. A device must never throw for any guest-chosen offset or width.
/// </summary>
public interface IBusDevice
{
    void Read(ulong offset, Span<byte> data);

    void Write(ulong offset, ReadOnlySpan<byte> data);
}
