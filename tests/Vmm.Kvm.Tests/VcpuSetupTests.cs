using Vmm.Kvm.Interop;
using Vmm.Kvm.Vcpus;
using static Iced.Intel.AssemblerRegisters;

namespace Vmm.Kvm.Tests;

public class VcpuSetupTests
{
    [KvmFact]
    public void LapicLintPinsAndFpuDefaultsAreSet()
    {
        using var guest = new TestGuest();
        using KvmVcpu vcpu = guest.Vm.CreateVcpu(0);
        vcpu.ConfigureCommon(1);

        byte[] lapic = vcpu.GetLapicRegisters();
        Assert.Equal(7u, (BitConverter.ToUInt32(lapic, 0x350) >> 8) & 7); // LINT0: ExtINT
        Assert.Equal(4u, (BitConverter.ToUInt32(lapic, 0x360) >> 8) & 7); // LINT1: NMI
        Assert.Equal(0x37F, vcpu.GetFpuControl().Fcw); // KVM_GET/SET_FPU do not carry MXCSR (x86.c copies no mxcsr)
    }

    /// <summary>Read from inside the guest with <c>fxsave</c> (FCW at offset 0, MXCSR at 24). <c>stmxcsr</c> would be
    /// the obvious instruction, but the PVM host cannot emulate it, in 64-bit or real mode (observed).</summary>
    [KvmFact]
    public void GuestSeesDefaultX87AndSseControlWords()
    {
        using var guest = new TestGuest();
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress) with { Cr4 = 0x220 }; // PAE | OSFXSR
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            a.fxsave(__[0x3000]);
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
        });

        VmRunResult result = guest.Run(state);

        Assert.True(result.Kind == VmStopKind.ExitRequested, result.ToString());
        Assert.Equal((ushort)0x37F, guest.Memory.Read<ushort>(new Vmm.Core.Memory.GuestAddress(0x3000)));
        Assert.Equal(0x1F80u, guest.Memory.Read<uint>(new Vmm.Core.Memory.GuestAddress(0x3000 + 24)));
    }

    [KvmFact]
    public void BootStateIsLoadedIntoTheVcpu()
    {
        using var guest = new TestGuest();
        using KvmVcpu vcpu = guest.Vm.CreateVcpu(0);
        var state = LongModeGuest.Setup(guest.Memory, 0x1234) with { Rsi = 0x7000, Rbx = 0x6000 };
        vcpu.ConfigureCommon(1); // CPUID first: VMX/SVM KVM checks EFER.LME and CR4 against it
        vcpu.ConfigureBoot(state);

        KvmRegs regs = vcpu.GetRegs();
        KvmSregs sregs = vcpu.GetSregs();
        Assert.Equal((0x1234UL, 0x8000UL, 0x7000UL, 0x6000UL), (regs.Rip, regs.Rsp, regs.Rsi, regs.Rbx));
        Assert.Equal((0x8, 1, 1), (sregs.Cs.Selector, sregs.Cs.L, sregs.Cs.Present));
        Assert.Equal((0x10, 0x10, 0x10), (sregs.Ds.Selector, sregs.Ss.Selector, sregs.Gs.Selector));
        Assert.Equal((0x18, 0xB), (sregs.Tr.Selector, sregs.Tr.Type));
        Assert.Equal(1, sregs.Ldt.Unusable);
        Assert.Equal((0x9000UL, 0x20UL), (sregs.Cr3, sregs.Cr4 & 0x20));
        Assert.Equal(0x500UL, sregs.Efer & 0x500);
        Assert.Equal((LongModeGuest.GdtAddress, (ushort)23), (sregs.Gdt.Base, sregs.Gdt.Limit));
    }

    [KvmFact]
    public void BootStateBeforeCpuidIsRefusedWithTheReason()
    {
        using var guest = new TestGuest();
        using KvmVcpu vcpu = guest.Vm.CreateVcpu(0);

        var e = Assert.Throws<InvalidOperationException>(() => vcpu.ConfigureBoot(LongModeGuest.Setup(guest.Memory, 0x1234)));

        Assert.Contains("ConfigureCommon", e.Message);
    }

    [KvmFact]
    public void GuestSeesTheKvmSignatureLeaf()
    {
        using var guest = new TestGuest();
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress);
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            a.mov(eax, 0x40000000);
            a.cpuid();
            a.mov(eax, ebx);
            a.mov(dx, TestGuest.RecordPort);
            a.@out(dx, eax);
            a.mov(dx, TestGuest.ExitPort);
            a.@out(dx, al);
        });

        VmRunResult result = guest.Run(state);

        Assert.True(result.Kind == VmStopKind.ExitRequested, result.ToString());
        Assert.Equal([(true, 0UL, 4, (ulong)Cpu.CpuidRules.KvmSignatureEbx)], guest.Recorder.Snapshot());
    }

    /// <summary>The BSP (64-bit) wakes the AP with INIT + SIPI through its LAPIC; the AP starts in real mode at the
    /// SIPI page and reports on a port — so the AP really was parked waiting for SIPI.</summary>
    [KvmFact]
    public void BspStartsTheApplicationProcessorWithInitSipi()
    {
        using var guest = new TestGuest();
        var state = LongModeGuest.Setup(guest.Memory, TestGuest.CodeAddress);
        guest.LoadCode(16, 0x2000, a =>
        {
            a.mov(dx, TestGuest.RecordPort + 1);
            a.mov(al, 0xA1);
            a.@out(dx, al);
            a.mov(dx, TestGuest.ExitPort);
            a.mov(al, 0x11);
            a.@out(dx, al);
            a.hlt();
        });
        guest.LoadCode(64, TestGuest.CodeAddress, a =>
        {
            var idle = a.CreateLabel();
            a.mov(rdi, 0xFEE00000);
            a.mov(eax, __dword_ptr[rdi + 0xF0]);
            a.or(eax, 0x1FF); // software-enable the LAPIC
            a.mov(__dword_ptr[rdi + 0xF0], eax);
            a.mov(__dword_ptr[rdi + 0x310], 1 << 24); // ICR high: destination APIC id 1
            a.mov(__dword_ptr[rdi + 0x300], 0x4500); // INIT, assert
            a.mov(__dword_ptr[rdi + 0x300], 0x4602); // SIPI, start at 0x2000
            a.mov(dx, TestGuest.RecordPort);
            a.mov(al, 0xB0);
            a.@out(dx, al);
            a.Label(ref idle);
            a.hlt();
            a.jmp(idle);
        });

        VmRunResult result = guest.Run(state, cpuCount: 2);

        Assert.True(result.Kind == VmStopKind.ExitRequested && result.ExitCode == 0x11, result.ToString());
        var accesses = guest.Recorder.Snapshot();
        Assert.Contains((true, 0UL, 1, 0xB0UL), accesses);
        Assert.Contains((true, 1UL, 1, 0xA1UL), accesses);
    }
}
