using Vmm.Core.Events;
using Vmm.Core.Platform;

namespace Vmm.Fuzz.Targets;

// In-memory stand-ins for what KVM provides, like the unit tests' fakes: they record and do nothing else.

internal sealed class NullMsiController : IMsiController
{
    public int Triggers;

    public IMsiVector AllocateVector() => new Vector(this);

    private sealed class Vector(NullMsiController owner) : IMsiVector
    {
        public void Update(ulong address, uint data)
        {
        }

        public void Trigger() => Interlocked.Increment(ref owner.Triggers);

        public void Dispose()
        {
        }
    }
}

internal sealed class NullInterruptLine(int gsi) : IInterruptLine
{
    public int Gsi { get; } = gsi;

    public bool Level { get; private set; }

    public void Trigger()
    {
    }

    public void SetLevel(bool asserted) => Level = asserted;
}

internal sealed class NullIoEventRegistrar : IIoEventRegistrar
{
    public int Active;

    public IDisposable Register(IoEventSpace space, ulong address, uint length, EventFd eventFd, ulong? dataMatch = null)
    {
        Active++;
        return new Registration(this);
    }

    private sealed class Registration(NullIoEventRegistrar owner) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                owner.Active--;
            }
        }
    }
}

internal sealed class NullMemoryMapper : IGuestMemoryMapper
{
    public IDisposable Map(ulong guestPhysicalAddress, nint hostAddress, ulong size) => new Mapping();

    private sealed class Mapping : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
