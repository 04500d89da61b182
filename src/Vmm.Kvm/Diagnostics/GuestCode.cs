using Vmm.Core.Memory;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Diagnostics;

/// <summary>Reads guest code by linear address: each page translated with KVM_TRANSLATE, then read from guest RAM
/// with bounds checks, so a hostile or broken guest state cannot make the VMM read outside guest RAM.</summary>
internal static class GuestCode
{
    private const ulong PageSize = 4096;

    /// <summary>The linear address of CS:RIP (CS.base is ignored in 64-bit mode).</summary>
    public static ulong LinearRip(in KvmRegs regs, in KvmSregs sregs) =>
        sregs.Cs.L != 0 && (sregs.Efer & (1UL << 10)) != 0 ? regs.Rip : sregs.Cs.Base + regs.Rip;

    /// <summary>Copies up to destination.Length bytes at <paramref name="linear"/>; returns how many were readable
    /// (stops at the first untranslatable page or byte outside RAM).</summary>
    public static int ReadLinear(KvmVcpu vcpu, GuestMemory memory, ulong linear, Span<byte> destination)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong address = linear + (ulong)done;
            ulong inPage = PageSize - (address & (PageSize - 1));
            int chunk = (int)Math.Min(inPage, (ulong)(destination.Length - done));
            ulong? physical = vcpu.Translate(address);
            if (physical is null || !memory.TryGetSpan(new GuestAddress(physical.Value), (ulong)chunk, out Span<byte> source))
            {
                break;
            }
            source.CopyTo(destination[done..]);
            done += chunk;
        }
        return done;
    }

    public static int ReadAtRip(KvmVcpu vcpu, Span<byte> destination)
    {
        KvmRegs regs = vcpu.GetRegs();
        KvmSregs sregs = vcpu.GetSregs();
        return ReadLinear(vcpu, vcpu.Vm.Memory, LinearRip(regs, sregs), destination);
    }
}
