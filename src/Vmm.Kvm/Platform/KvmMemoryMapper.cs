using Vmm.Core.Memory;
using Vmm.Core.Platform;

namespace Vmm.Kvm.Platform;

/// <summary>Installs host memory (shared-memory BARs) as extra KVM memory slots; disposal deletes the slot
/// (KVM_SET_USER_MEMORY_REGION with size 0). Slots after the RAM slots are reused once freed.</summary>
internal sealed class KvmMemoryMapper(KvmVm vm, int firstSlot, int slotLimit) : IGuestMemoryMapper
{
    private const ulong PageMask = 0xFFF;
    private readonly Lock _lock = new();
    private readonly SortedSet<int> _freeSlots = new();
    private readonly List<Mapping> _live = new();
    private int _nextSlot = firstSlot;

    public IDisposable Map(ulong guestPhysicalAddress, nint hostAddress, ulong size)
    {
        if (size == 0 || (size & PageMask) != 0 || (guestPhysicalAddress & PageMask) != 0 || ((ulong)hostAddress & PageMask) != 0)
        {
            throw new ArgumentException($"memory slot 0x{guestPhysicalAddress:x}+0x{size:x} at host 0x{hostAddress:x} is not page-aligned and non-empty");
        }
        if (guestPhysicalAddress + size < guestPhysicalAddress)
        {
            throw new ArgumentException("memory slot wraps around the address space");
        }
        foreach (GuestRegion r in vm.Memory.Regions)
        {
            if (guestPhysicalAddress < r.End && r.Start.Value < guestPhysicalAddress + size)
            {
                throw new ArgumentException($"memory slot 0x{guestPhysicalAddress:x}+0x{size:x} overlaps guest RAM at {r.Start}");
            }
        }
        lock (_lock)
        {
            foreach (Mapping m in _live)
            {
                if (guestPhysicalAddress < m.Address + m.Size && m.Address < guestPhysicalAddress + size)
                {
                    throw new ArgumentException($"memory slot 0x{guestPhysicalAddress:x}+0x{size:x} overlaps the slot at 0x{m.Address:x}");
                }
            }
            int slot;
            if (_freeSlots.Count > 0)
            {
                slot = _freeSlots.Min;
                _freeSlots.Remove(slot);
            }
            else if (_nextSlot < slotLimit)
            {
                slot = _nextSlot++;
            }
            else
            {
                throw new InvalidOperationException($"no free KVM memory slot (limit {slotLimit})");
            }
            try
            {
                vm.SetMemorySlot((uint)slot, guestPhysicalAddress, size, hostAddress);
            }
            catch
            {
                _freeSlots.Add(slot);
                throw;
            }
            var mapping = new Mapping(this, slot, guestPhysicalAddress, size);
            _live.Add(mapping);
            return mapping;
        }
    }

    private void Unmap(Mapping mapping)
    {
        lock (_lock)
        {
            if (!_live.Remove(mapping))
            {
                return;
            }
            try
            {
                if (!vm.Handle.IsClosed)
                {
                    vm.SetMemorySlot((uint)mapping.Slot, mapping.Address, 0, 0);
                }
            }
            finally
            {
                _freeSlots.Add(mapping.Slot);
            }
        }
    }

    private sealed class Mapping(KvmMemoryMapper owner, int slot, ulong address, ulong size) : IDisposable
    {
        private int _disposed;
        public int Slot { get; } = slot;
        public ulong Address { get; } = address;
        public ulong Size { get; } = size;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Unmap(this);
            }
        }
    }
}
