using System.Text;
using Iced.Intel;
using Decoder = Iced.Intel.Decoder;
using Vmm.Kvm.Interop;

namespace Vmm.Kvm.Diagnostics;

/// <summary>
/// What a vCPU looked like when the VM died: the exit reason and details, general and control registers, segment
/// selectors, and a disassembly of the code around RIP (16 bytes before, 32 after) in the CPU's current bitness.
/// </summary>
public sealed class CrashReport
{
    public const int BytesBeforeRip = 16, BytesAfterRip = 32;

    public required int VcpuIndex { get; init; }
    public required string Reason { get; init; }
    public string? Details { get; init; }
    public KvmRegs Registers { get; init; }
    public KvmSregs SpecialRegisters { get; init; }
    /// <summary>16, 32 or 64.</summary>
    public int Bitness { get; init; }
    /// <summary>One line per instruction; the one at RIP is marked with "&lt;== RIP".</summary>
    public IReadOnlyList<string> Disassembly { get; init; } = [];
    /// <summary>Set when the registers could not be read, or what could be read is not the guest's state.</summary>
    public string? CaptureError { get; init; }

    /// <summary>The registers as text, for architectures without the x86 structures (arm64).</summary>
    public string? RegisterText { get; init; }

    /// <summary>A report whose registers are unavailable, with <paramref name="why"/>.</summary>
    internal static CrashReport WithoutRegisters(int vcpuIndex, string reason, string? details, string why) =>
        new() { VcpuIndex = vcpuIndex, Reason = reason, Details = details, CaptureError = why };

    internal static CrashReport Capture(KvmVcpu vcpu, string reason, string? details) =>
        vcpu.Vm.Architecture.CaptureCrash(vcpu, reason, details);

    internal static CrashReport CaptureX86(KvmVcpu vcpu, string reason, string? details)
    {
        KvmRegs regs;
        KvmSregs sregs;
        try
        {
            regs = vcpu.GetRegs();
            sregs = vcpu.GetSregs();
        }
        catch (KvmException e)
        {
            return WithoutRegisters(vcpu.Index, reason, details, e.Message);
        }
        int bitness = BitnessOf(sregs);
        ulong linearRip = GuestCode.LinearRip(regs, sregs);
        Span<byte> window = stackalloc byte[BytesBeforeRip + BytesAfterRip];
        int before = BytesBeforeRip;
        int read = GuestCode.ReadLinear(vcpu, vcpu.Vm.Memory, linearRip - BytesBeforeRip, window);
        if (read <= BytesBeforeRip || linearRip < BytesBeforeRip)
        {
            before = 0; // the bytes before RIP are not readable: start at RIP
            read = GuestCode.ReadLinear(vcpu, vcpu.Vm.Memory, linearRip, window[..BytesAfterRip]);
        }
        return new CrashReport
        {
            VcpuIndex = vcpu.Index,
            Reason = reason,
            Details = details,
            Registers = regs,
            SpecialRegisters = sregs,
            Bitness = bitness,
            Disassembly = Disassemble(window[..read].ToArray(), before, regs.Rip, bitness),
        };
    }

    /// <summary>16 in real mode or a 16-bit code segment, 64 in long mode (CS.L), else 32.</summary>
    public static int BitnessOf(in KvmSregs sregs)
    {
        if ((sregs.Cr0 & 1) == 0)
        {
            return 16;
        }
        if (sregs.Cs.L != 0 && (sregs.Efer & (1UL << 10)) != 0)
        {
            return 64;
        }
        return sregs.Cs.Db != 0 ? 32 : 16;
    }

    /// <summary>
    /// Disassembles <paramref name="code"/>, whose byte <paramref name="ripOffset"/> is at <paramref name="rip"/>.
    /// Decoding starts at the earliest offset from which the instruction stream lands exactly on RIP, so the
    /// instructions before RIP are plausible; the RIP instruction is marked.
    /// </summary>
    public static IReadOnlyList<string> Disassemble(byte[] code, int ripOffset, ulong rip, int bitness)
    {
        int start = ripOffset;
        for (int candidate = 0; candidate < ripOffset; candidate++)
        {
            if (LandsOn(code, candidate, ripOffset, bitness))
            {
                start = candidate;
                break;
            }
        }
        var lines = new List<string>();
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code, start, code.Length - start));
        ulong startIp = rip - (ulong)(ripOffset - start);
        decoder.IP = startIp;
        var formatter = new NasmFormatter();
        var output = new StringOutput();
        while (decoder.IP < startIp + (ulong)(code.Length - start))
        {
            decoder.Decode(out Instruction instruction);
            int offset = (int)(instruction.IP - startIp) + start;
            if (instruction.Length == 0 || (instruction.IsInvalid && offset + instruction.Length >= code.Length))
            {
                break; // truncated at the end of the window
            }
            formatter.Format(instruction, output);
            string hex = Convert.ToHexString(code, offset, Math.Min(instruction.Length, code.Length - offset)).ToLowerInvariant();
            string text = instruction.IsInvalid ? "(bad)" : output.ToString();
            output.Reset();
            lines.Add($"{instruction.IP:x16}  {hex,-24} {text}{(instruction.IP == rip ? "   <== RIP" : "")}");
        }
        return lines;
    }

    private static bool LandsOn(byte[] code, int start, int target, int bitness)
    {
        var decoder = Decoder.Create(bitness, new ByteArrayCodeReader(code, start, code.Length - start));
        int offset = start;
        while (offset < target)
        {
            decoder.Decode(out Instruction instruction);
            if (instruction.IsInvalid)
            {
                return false;
            }
            offset += instruction.Length;
        }
        return offset == target;
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append($"vCPU {VcpuIndex}: {Reason}");
        if (Details is not null)
        {
            sb.Append($" ({Details})");
        }
        sb.AppendLine();
        if (CaptureError is not null)
        {
            sb.AppendLine($"  registers unavailable: {CaptureError}");
            return sb.ToString();
        }
        if (RegisterText is not null)
        {
            foreach (string line in RegisterText.Split('\n'))
            {
                sb.Append("  ").AppendLine(line);
            }
            return sb.ToString();
        }
        KvmRegs r = Registers;
        KvmSregs s = SpecialRegisters;
        sb.AppendLine($"  RAX={r.Rax:x16} RBX={r.Rbx:x16} RCX={r.Rcx:x16} RDX={r.Rdx:x16}");
        sb.AppendLine($"  RSI={r.Rsi:x16} RDI={r.Rdi:x16} RBP={r.Rbp:x16} RSP={r.Rsp:x16}");
        sb.AppendLine($"  R8 ={r.R8:x16} R9 ={r.R9:x16} R10={r.R10:x16} R11={r.R11:x16}");
        sb.AppendLine($"  R12={r.R12:x16} R13={r.R13:x16} R14={r.R14:x16} R15={r.R15:x16}");
        sb.AppendLine($"  RIP={r.Rip:x16} RFLAGS={r.Rflags:x16}");
        sb.AppendLine($"  CR0={s.Cr0:x16} CR2={s.Cr2:x16} CR3={s.Cr3:x16} CR4={s.Cr4:x16} EFER={s.Efer:x16}");
        sb.AppendLine($"  CS={s.Cs.Selector:x4} (base {s.Cs.Base:x} L={s.Cs.L} DB={s.Cs.Db}) DS={s.Ds.Selector:x4} ES={s.Es.Selector:x4} " +
            $"FS={s.Fs.Selector:x4} GS={s.Gs.Selector:x4} SS={s.Ss.Selector:x4} TR={s.Tr.Selector:x4}");
        sb.AppendLine($"  GDT={s.Gdt.Base:x}/{s.Gdt.Limit:x} IDT={s.Idt.Base:x}/{s.Idt.Limit:x}");
        sb.AppendLine($"  code ({Bitness}-bit):");
        if (Disassembly.Count == 0)
        {
            sb.AppendLine("    (no readable code at RIP)");
        }
        foreach (string line in Disassembly)
        {
            sb.Append("    ").AppendLine(line);
        }
        return sb.ToString();
    }
}
