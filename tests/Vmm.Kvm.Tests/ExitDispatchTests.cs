using System.Runtime.InteropServices;
using Vmm.Core.Bus;
using Vmm.Kvm.Diagnostics;
using Vmm.Kvm.Interop;
using Vmm.Kvm.Vcpus;

namespace Vmm.Kvm.Tests;

/// <summary>Exit dispatch over a synthetic kvm_run page, no KVM needed: a hostile/garbled exit never reaches
/// outside the page.</summary>
public unsafe class ExitDispatchTests : IDisposable
{
    private const int PageSize = 4096;
    private readonly byte* _page = (byte*)NativeMemory.AllocZeroed(PageSize);
    private readonly IoBus _bus = new("pio");
    private readonly RecordingDevice _device = new();

    public ExitDispatchTests() => _bus.Insert(_device, 0x100, 8);

    private KvmRun* Run => (KvmRun*)_page;

    [Theory]
    [InlineData(3, 1, 64UL)] // bad size
    [InlineData(1, 0, 64UL)] // no elements
    [InlineData(4, 1, 4094UL)] // runs past the page
    [InlineData(4, 0x40000001, 64UL)] // size*count overflows 32 bits, past the page
    [InlineData(1, 1, 4096UL)] // offset outside
    public void MalformedIoExitIsRejected(byte size, uint count, ulong offset)
    {
        Run->IoDirection = KvmConstants.IoDirectionOut;
        Run->IoSize = size;
        Run->IoCount = count;
        Run->IoDataOffset = offset;
        Run->IoPort = 0x100;
        Assert.False(VcpuExitHandler.DispatchIo(Run, PageSize, _bus));
        Assert.Empty(_device.Snapshot());
    }

    [Fact]
    public void StringInputFillsEveryElementAndUnclaimedPortsReadOnes()
    {
        _device.ReadValue = 0xBEEF;
        Run->IoDirection = KvmConstants.IoDirectionIn;
        Run->IoSize = 2;
        Run->IoCount = 3;
        Run->IoDataOffset = 512;
        Run->IoPort = 0x100;
        Assert.True(VcpuExitHandler.DispatchIo(Run, PageSize, _bus));
        Assert.Equal(new byte[] { 0xEF, 0xBE, 0xEF, 0xBE, 0xEF, 0xBE }, new ReadOnlySpan<byte>(_page + 512, 6).ToArray());

        Run->IoPort = 0x300;
        Assert.True(VcpuExitHandler.DispatchIo(Run, PageSize, _bus));
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, new ReadOnlySpan<byte>(_page + 512, 6).ToArray());
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(9u)]
    [InlineData(0xFFFFFFFFu)]
    public void MalformedMmioLengthIsRejected(uint length)
    {
        Run->MmioLen = length;
        Run->MmioIsWrite = 1;
        Run->MmioPhysAddr = 0x100;
        Assert.False(VcpuExitHandler.DispatchMmio(Run, _bus));
        Assert.Empty(_device.Snapshot());
    }

    [Fact]
    public void DisassemblyResynchronisesOnRip()
    {
        // 0x1000: mov eax, imm32 (5 bytes) ; nop ; ud2 at 0x1006 — window starts inside the mov.
        byte[] code = [0x34, 0x12, 0x00, 0x00, 0x90, 0x0F, 0x0B, 0xF4];
        IReadOnlyList<string> lines = CrashReport.Disassemble(code, ripOffset: 5, rip: 0x1006, bitness: 32);
        string rip = Assert.Single(lines, l => l.EndsWith("<== RIP"));
        Assert.StartsWith("0000000000001006  0f0b", rip);
        Assert.Contains("ud2", rip);
        Assert.Contains(lines, l => l.Contains("hlt"));
    }

    public void Dispose() => NativeMemory.Free(_page);
}
