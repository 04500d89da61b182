using Vmm.Devices.Legacy.I8042;
using Vmm.Devices.Legacy.Tests.TestDoubles;

namespace Vmm.Devices.Legacy.Tests.I8042;

public sealed class I8042DeviceTests
{
    private const int Data = 0;
    private const int Command = 4;
    private const byte Obf = 0x01, Ibf = 0x02, Sys = 0x04, AuxData = 0x20;

    private readonly RecordingVmControl _vm = new();
    private readonly I8042Device _dev;

    public I8042DeviceTests() => _dev = new I8042Device(_vm);

    private void Out(int offset, byte value) => _dev.Write((ulong)offset, [value]);

    private byte In(int offset)
    {
        Span<byte> data = [0];
        _dev.Read((ulong)offset, data);
        return data[0];
    }

    /// <summary>Linux's __i8042_command: wait for IBF clear, write, wait for OBF, read (failing like a timeout).</summary>
    private byte CommandWithResult(byte command)
    {
        Assert.Equal(0, In(Command) & Ibf);
        Out(Command, command);
        Assert.NotEqual(0, In(Command) & Obf);
        return In(Data);
    }

    [Fact]
    public void PulseResetLine_RequestsExitWithCodeZero_Once()
    {
        // arch/x86/kernel/reboot.c BOOT_KBD: up to ten times kb_wait() then outb(0xfe, 0x64).
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(0, In(Command) & Ibf);
            Out(Command, 0xFE);
        }
        Assert.Equal([(0, "guest reset via i8042")], _vm.Requests);
    }

    [Theory]
    [InlineData(0xF0)]
    [InlineData(0xFC)]
    public void OtherPulseCommandsWithBitZeroClear_AlsoReset(byte command)
    {
        Out(Command, command);
        Assert.Single(_vm.Requests);
    }

    [Theory]
    [InlineData(0xFF)]
    [InlineData(0xF1)]
    public void PulseCommandsWithBitZeroSet_DoNotReset(byte command)
    {
        Out(Command, command);
        Assert.Empty(_vm.Requests);
    }

    [Fact]
    public void StatusAtStart_NoOutput_InputEmpty_SystemFlag()
    {
        byte status = In(Command);
        Assert.Equal(0, status & (Obf | Ibf));
        Assert.NotEqual(0, status & Sys);
    }

    [Fact]
    public void SelfTest_Answers0x55_ThenOutputBufferEmpties()
    {
        Assert.Equal(0x55, CommandWithResult(0xAA));
        Assert.Equal(0, In(Command) & Obf);
    }

    [Fact]
    public void CommandByte_ReadsStable_AndWritesBack()
    {
        byte ctr1 = CommandWithResult(0x20);
        byte ctr2 = CommandWithResult(0x20);
        Assert.Equal(ctr1, ctr2); // i8042_controller_init wants two equal reads
        Assert.Equal(0x65, ctr1);

        // As Linux does: disable the keyboard interface and interrupt, drop translation, write back.
        byte ctr = (byte)((ctr1 | 0x10) & ~0x01 & ~0x40);
        Out(Command, 0x60);
        Out(Data, ctr);
        Assert.Equal(ctr, CommandWithResult(0x20));
        Assert.Empty(_vm.Requests);
    }

    [Fact]
    public void AuxToggle_IsMirroredInCommandByte()
    {
        Out(Command, 0xA8);
        Assert.Equal(0, CommandWithResult(0x20) & 0x20);
        Out(Command, 0xA7);
        Assert.NotEqual(0, CommandWithResult(0x20) & 0x20);
        Out(Command, 0xAE);
        Assert.Equal(0, CommandWithResult(0x20) & 0x10);
        Out(Command, 0xAD);
        Assert.NotEqual(0, CommandWithResult(0x20) & 0x10);
    }

    [Fact]
    public void AuxProbe_FailsAtOnce_WithoutTimeouts()
    {
        // i8042_check_aux: AUX_LOOP 0xD3 with 0x5A; a reply without AUXDATA is "auxerr" ...
        Out(Command, 0xD3);
        Out(Data, 0x5A);
        byte status = In(Command);
        Assert.NotEqual(0, status & Obf);
        Assert.Equal(0, status & AuxData);
        // ... then AUX_TEST must answer something other than 0x00/0xFA/0xFF for Linux to give up.
        byte auxTest = CommandWithResult(0xA9);
        Assert.DoesNotContain(auxTest, new byte[] { 0x00, 0xFA, 0xFF });
    }

    [Fact]
    public void InterfaceTests_AndOutputPort()
    {
        Assert.Equal(0x00, CommandWithResult(0xAB));
        Assert.Equal(0x03, CommandWithResult(0xD0)); // reset line inactive, A20 on
        Out(Command, 0xDD);
        Assert.Equal(0x01, CommandWithResult(0xD0));
        Out(Command, 0xD2);
        Out(Data, 0x9C);
        Assert.Equal(0x9C, In(Data));
    }

    [Fact]
    public void WriteOutputPortWithResetLow_Resets()
    {
        Out(Command, 0xD1);
        Out(Data, 0x03);
        Assert.Empty(_vm.Requests);
        Out(Command, 0xD1);
        Out(Data, 0x02);
        Assert.Equal([(0, "guest reset via i8042")], _vm.Requests);
    }

    [Fact]
    public void ResetByteOnTheDataPort_IsKeyboardData_NotAReset()
    {
        Out(Data, 0xFE);
        Assert.Empty(_vm.Requests);
        Assert.Equal(0, In(Command) & Obf); // no keyboard to answer
    }

    [Theory]
    [InlineData(1UL, 1)]
    [InlineData(3UL, 1)]
    [InlineData(5UL, 1)]
    [InlineData(ulong.MaxValue, 1)]
    [InlineData(4UL, 2)]
    [InlineData(0UL, 4)]
    [InlineData(4UL, 8)]
    public void BadOffsetsAndWidths_ReadAllOnes_AndNeverReset(ulong offset, int width)
    {
        byte[] buffer = new byte[width];
        _dev.Read(offset, buffer);
        Assert.All(buffer, b => Assert.Equal(0xFF, b));
        _dev.Write(offset, Enumerable.Repeat((byte)0xFE, width).ToArray());
        Assert.Empty(_vm.Requests);
    }
}
