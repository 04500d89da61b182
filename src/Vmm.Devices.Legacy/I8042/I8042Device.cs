using Vmm.Core.Bus;
using Vmm.Core.Platform;

namespace Vmm.Devices.Legacy.I8042;

/// <summary>
/// An i8042 keyboard controller with nothing plugged in, inserted at port 0x60 with <see cref="PortCount"/> = 5
/// (0x60 data, 0x64 status/command; 0x61–0x63 read all-ones and ignore writes). It exists for two reasons: a
/// guest <c>reboot</c> with <c>reboot=k</c> pulses the CPU reset line through it (command 0xFE), which becomes
/// <see cref="IVmControl.RequestExit"/> with code 0; and Linux's i8042 driver, if built, must find a sane
/// controller that answers every probe at once instead of timing out.
/// </summary>
/// <remarks>
/// <para>Answered commands: 0x20–0x3F read controller RAM (0x20 = command byte), 0x60–0x7F write it, 0xA7/0xA8
/// aux disable/enable and 0xAD/0xAE keyboard disable/enable (mirrored in the command byte), 0xA9 aux interface
/// test, 0xAA self-test (0x55), 0xAB keyboard interface test (0x00), 0xC0 input port, 0xD0/0xD1 output port
/// (clearing bit 0 through 0xD1 resets the machine, as on a PC), 0xD2 write keyboard output buffer, 0xDD/0xDF
/// A20 off/on, 0xF0–0xFF pulse output lines (bit 0 clear pulses reset). Unknown commands are ignored.</para>
/// <para>No keyboard and no mouse are attached and the device raises no interrupts: bytes written to the
/// keyboard (0x60 without a pending command) or to the mouse (0xD4) are dropped. The aux channel reports itself
/// broken so that Linux gives up on it immediately: the 0xD3 loop-back echo comes back without the aux-data status
/// bit (Linux: "auxerr") and the aux interface test answers 0x02 (clock line stuck high). Guests with the i8042
/// driver may still spend a probe timeout on the absent keyboard; <c>i8042.nokbd i8042.noaux</c> (or Firecracker's
/// <c>i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd</c>) avoid it.</para>
/// </remarks>
public sealed class I8042Device : IBusDevice
{
    /// <summary>Ports 0x60..0x64 (offsets 0 and 4 are the controller's).</summary>
    public const int PortCount = 5;

    /// <summary>The reason given to <see cref="IVmControl.RequestExit"/> on a reset.</summary>
    public const string ResetReason = "guest reset via i8042";

    internal const int DataOffset = 0;
    internal const int CommandOffset = 4;

    // Status register bits.
    internal const byte StatusOutputFull = 0x01;
    internal const byte StatusInputFull = 0x02;
    internal const byte StatusSystemFlag = 0x04;
    internal const byte StatusLastWriteWasCommand = 0x08;
    internal const byte StatusNotInhibited = 0x10;
    internal const byte StatusAuxData = 0x20;

    // Command byte (controller RAM 0) bits.
    internal const byte CtrKeyboardInterrupt = 0x01;
    internal const byte CtrSystemFlag = 0x04;
    internal const byte CtrKeyboardDisabled = 0x10;
    internal const byte CtrAuxDisabled = 0x20;
    internal const byte CtrTranslate = 0x40;

    // Output port bits.
    internal const byte OutputPortResetInactive = 0x01;
    internal const byte OutputPortA20 = 0x02;

    internal const byte CmdReadCommandByte = 0x20;
    internal const byte CmdWriteCommandByte = 0x60;
    internal const byte CmdAuxDisable = 0xA7;
    internal const byte CmdAuxEnable = 0xA8;
    internal const byte CmdAuxTest = 0xA9;
    internal const byte CmdSelfTest = 0xAA;
    internal const byte CmdKeyboardTest = 0xAB;
    internal const byte CmdKeyboardDisable = 0xAD;
    internal const byte CmdKeyboardEnable = 0xAE;
    internal const byte CmdReadInputPort = 0xC0;
    internal const byte CmdReadOutputPort = 0xD0;
    internal const byte CmdWriteOutputPort = 0xD1;
    internal const byte CmdWriteKeyboardOutput = 0xD2;
    internal const byte CmdWriteAuxOutput = 0xD3;
    internal const byte CmdWriteAux = 0xD4;
    internal const byte CmdA20Disable = 0xDD;
    internal const byte CmdA20Enable = 0xDF;
    internal const byte CmdPulseResetLine = 0xFE;

    internal const byte SelfTestPassed = 0x55;
    internal const byte InterfaceTestPassed = 0x00;
    internal const byte InterfaceClockStuckHigh = 0x02;

    /// <summary>What a BIOS leaves behind: keyboard interrupt on, POST passed, translation on, aux off.</summary>
    internal const byte InitialCommandByte = CtrKeyboardInterrupt | CtrSystemFlag | CtrAuxDisabled | CtrTranslate;

    private readonly Lock _lock = new();
    private readonly IVmControl _vmControl;
    private readonly byte[] _ram = new byte[32];
    private byte _outputPort = OutputPortResetInactive | OutputPortA20;
    private byte _outputBuffer;
    private bool _outputFull;
    private bool _lastWriteWasCommand;
    private byte _pendingCommand; // a command that takes a data byte, 0 when none
    private bool _resetRequested;

    public I8042Device(IVmControl vmControl)
    {
        ArgumentNullException.ThrowIfNull(vmControl);
        _vmControl = vmControl;
        _ram[0] = InitialCommandByte;
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data)
    {
        if (data.Length != 1 || (offset != DataOffset && offset != CommandOffset))
        {
            data.Fill(0xFF);
            return;
        }
        lock (_lock)
        {
            data[0] = offset == DataOffset ? ReadData() : ReadStatus();
        }
    }

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (data.Length != 1 || (offset != DataOffset && offset != CommandOffset))
        {
            return;
        }
        bool reset;
        lock (_lock)
        {
            reset = offset == DataOffset ? WriteData(data[0]) : WriteCommand(data[0]);
            if (reset && _resetRequested)
            {
                reset = false; // Linux pulses up to ten times; one request is enough.
            }
            _resetRequested |= reset;
        }
        if (reset)
        {
            _vmControl.RequestExit(0, ResetReason);
        }
    }

    private byte ReadStatus()
    {
        byte status = StatusNotInhibited;
        if (_outputFull)
        {
            status |= StatusOutputFull;
        }
        if ((_ram[0] & CtrSystemFlag) != 0)
        {
            status |= StatusSystemFlag;
        }
        if (_lastWriteWasCommand)
        {
            status |= StatusLastWriteWasCommand;
        }
        return status;
    }

    private byte ReadData()
    {
        // An empty output buffer reads as its last contents, as on the real part.
        _outputFull = false;
        return _outputBuffer;
    }

    private void Respond(byte value)
    {
        _outputBuffer = value;
        _outputFull = true;
    }

    /// <returns>True when the command pulses the reset line.</returns>
    private bool WriteCommand(byte command)
    {
        _lastWriteWasCommand = true;
        _pendingCommand = 0;
        switch (command)
        {
            case >= CmdReadCommandByte and < CmdReadCommandByte + 0x20:
                Respond(_ram[command - CmdReadCommandByte]);
                return false;
            case >= CmdWriteCommandByte and < CmdWriteCommandByte + 0x20:
                _pendingCommand = command;
                return false;
            case CmdAuxDisable:
                _ram[0] |= CtrAuxDisabled;
                return false;
            case CmdAuxEnable:
                _ram[0] &= unchecked((byte)~CtrAuxDisabled);
                return false;
            case CmdAuxTest:
                Respond(InterfaceClockStuckHigh);
                return false;
            case CmdSelfTest:
                _ram[0] |= CtrSystemFlag;
                Respond(SelfTestPassed);
                return false;
            case CmdKeyboardTest:
                Respond(InterfaceTestPassed);
                return false;
            case CmdKeyboardDisable:
                _ram[0] |= CtrKeyboardDisabled;
                return false;
            case CmdKeyboardEnable:
                _ram[0] &= unchecked((byte)~CtrKeyboardDisabled);
                return false;
            case CmdReadInputPort:
                Respond(0x00);
                return false;
            case CmdReadOutputPort:
                Respond(_outputPort);
                return false;
            case CmdWriteOutputPort or CmdWriteKeyboardOutput or CmdWriteAuxOutput or CmdWriteAux:
                _pendingCommand = command;
                return false;
            case CmdA20Disable:
                _outputPort &= unchecked((byte)~OutputPortA20);
                return false;
            case CmdA20Enable:
                _outputPort |= OutputPortA20;
                return false;
            case >= 0xF0:
                // Pulse output port lines: a 0 in the low nibble pulses that line; line 0 is CPU reset.
                return (command & OutputPortResetInactive) == 0;
            default:
                return false;
        }
    }

    /// <returns>True when the byte drives the reset line low.</returns>
    private bool WriteData(byte value)
    {
        _lastWriteWasCommand = false;
        byte command = _pendingCommand;
        _pendingCommand = 0;
        switch (command)
        {
            case >= CmdWriteCommandByte and < CmdWriteCommandByte + 0x20:
                _ram[command - CmdWriteCommandByte] = value;
                return false;
            case CmdWriteOutputPort:
                _outputPort = value;
                return (value & OutputPortResetInactive) == 0;
            case CmdWriteKeyboardOutput:
            case CmdWriteAuxOutput: // reported as keyboard data: the aux channel is absent (see remarks)
                Respond(value);
                return false;
            default:
                // To the keyboard (no command) or the mouse (0xD4): nothing is attached, the byte is dropped.
                return false;
        }
    }
}
