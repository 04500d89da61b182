using Vmm.Core.Arch.X86;
using Vmm.Core.Bus;
using Vmm.Devices.Legacy.DebugExit;
using Vmm.Devices.Legacy.Tests.TestDoubles;

namespace Vmm.Devices.Legacy.Tests.DebugExit;

public sealed class DebugExitDeviceTests
{
    private readonly RecordingVmControl _vm = new();
    private readonly IoBus _bus = new("pio");

    public DebugExitDeviceTests() =>
        _bus.Insert(new DebugExitDevice(_vm), X86Layout.DebugExitPort, DebugExitDevice.PortCount);

    [Theory]
    [InlineData(new byte[] { 0x00 }, 0)]
    [InlineData(new byte[] { 0x2A }, 42)]
    [InlineData(new byte[] { 0xFF }, 255)]
    [InlineData(new byte[] { 0x02, 0x01 }, 0x0102)]
    [InlineData(new byte[] { 0x78, 0x56, 0x34, 0x12 }, 0x12345678)]
    public void WriteOfV_RequestsExitWithCodeV(byte[] bytes, int expected)
    {
        Assert.True(_bus.Write(X86Layout.DebugExitPort, bytes));
        Assert.Equal([(expected, $"guest wrote {expected} to the debug-exit port")], _vm.Requests);
    }

    [Fact]
    public void FourByteValueAboveIntMax_IsPassedBitForBit()
    {
        Assert.True(_bus.Write(X86Layout.DebugExitPort, [0xFF, 0xFF, 0xFF, 0xFF]));
        Assert.Equal(-1, Assert.Single(_vm.Requests).ExitCode);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 1)]
    public void WritesAtOtherOffsets_AreIgnored(int offset, int width)
    {
        Assert.True(_bus.Write(X86Layout.DebugExitPort + (ulong)offset, new byte[width]));
        Assert.Empty(_vm.Requests);
    }

    [Fact]
    public void EightByteWrite_IsIgnored()
    {
        var device = new DebugExitDevice(_vm);
        device.Write(0, new byte[8]);
        device.Write(0, []);
        Assert.Empty(_vm.Requests);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(0, 4)]
    [InlineData(3, 1)]
    public void Reads_ReturnAllOnes_AndHaveNoEffect(int offset, int width)
    {
        byte[] data = new byte[width];
        Assert.True(_bus.Read(X86Layout.DebugExitPort + (ulong)offset, data));
        Assert.All(data, b => Assert.Equal(0xFF, b));
        Assert.Empty(_vm.Requests);
    }
}
