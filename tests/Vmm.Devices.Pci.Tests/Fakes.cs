using Vmm.Core.Events;
using Vmm.Core.Memory;
using Vmm.Core.Platform;
using Vmm.Core.Virtio;

namespace Vmm.Devices.Pci.Tests;

internal sealed class FakeMsiVector : IMsiVector
{
    public ulong Address;
    public uint Data;
    public int Updates;
    public int Triggers;
    public bool Disposed;

    public void Update(ulong address, uint data)
    {
        Address = address;
        Data = data;
        Updates++;
    }

    public void Trigger() => Triggers++;

    public void Dispose() => Disposed = true;
}

internal sealed class FakeMsiController : IMsiController
{
    public List<FakeMsiVector> Vectors { get; } = [];

    public IMsiVector AllocateVector()
    {
        var v = new FakeMsiVector();
        Vectors.Add(v);
        return v;
    }
}

internal sealed class FakeInterruptLine(int gsi) : IInterruptLine
{
    public int Gsi { get; } = gsi;
    public bool Level;
    public int Pulses;

    public void Trigger() => Pulses++;

    public void SetLevel(bool asserted) => Level = asserted;
}

internal sealed class FakeIoEventRegistrar : IIoEventRegistrar
{
    public List<(IoEventSpace Space, ulong Address, uint Length, EventFd Fd, bool Active)> Registrations { get; } = [];

    public IDisposable Register(IoEventSpace space, ulong address, uint length, EventFd eventFd, ulong? dataMatch = null)
    {
        int index = Registrations.Count;
        Registrations.Add((space, address, length, eventFd, true));
        return new Unregister(() => Registrations[index] = Registrations[index] with { Active = false });
    }

    public IEnumerable<ulong> ActiveAddresses() => Registrations.Where(r => r.Active).Select(r => r.Address);

    private sealed class Unregister(Action a) : IDisposable
    {
        public void Dispose() => a();
    }
}

internal sealed class FakeMemoryMapper : IGuestMemoryMapper
{
    public List<(ulong Gpa, nint Host, ulong Size, bool Active)> Maps { get; } = [];
    public Func<ulong, bool>? Refuse { get; set; }

    public IDisposable Map(ulong guestPhysicalAddress, nint hostAddress, ulong size)
    {
        if (Refuse?.Invoke(guestPhysicalAddress) == true)
        {
            throw new IOException("KVM_SET_USER_MEMORY_REGION: EEXIST");
        }
        int index = Maps.Count;
        Maps.Add((guestPhysicalAddress, hostAddress, size, true));
        return new Unmap(() => Maps[index] = Maps[index] with { Active = false });
    }

    private sealed class Unmap(Action a) : IDisposable
    {
        public void Dispose() => a();
    }
}

/// <summary>A device model that records what the transport does to it.</summary>
internal sealed class FakeVirtioDevice(ushort[] queueSizes, ulong features, SharedMemoryRegion[]? regions = null) : IVirtioDevice
{
    public readonly byte[] Config = [1, 2, 3, 4, 5, 6, 7, 8];
    public VirtioActivation? Activation;
    public int Activations;
    public int Resets;

    public VirtioDeviceType DeviceType => VirtioDeviceType.Rng;
    public ReadOnlySpan<ushort> QueueMaxSizes => queueSizes;
    public ulong AvailableFeatures => features;
    public IReadOnlyList<SharedMemoryRegion> SharedMemoryRegions => regions ?? [];

    public void ReadConfig(uint offset, Span<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = offset + (uint)i < Config.Length ? Config[offset + i] : (byte)0;
        }
    }

    public void WriteConfig(uint offset, ReadOnlySpan<byte> data)
    {
    }

    public void Activate(VirtioActivation activation)
    {
        Activation = activation;
        Activations++;
    }

    public void Reset()
    {
        Resets++;
        Activation = null;
    }

    public void Dispose()
    {
        foreach (SharedMemoryRegion r in regions ?? [])
        {
            r.Dispose();
        }
    }
}
