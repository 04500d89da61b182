using Vmm.Devices.Legacy.Serial;

namespace Vmm.Devices.Legacy.Tests.Serial;

public sealed class ConsoleEscapeParserTests
{
    private const byte CtrlA = 0x01;

    /// <summary>Runs the parser the way the console reader does and collects forwarded bytes and commands.</summary>
    private static (byte[] Forwarded, List<ConsoleCommand> Commands) Run(ConsoleEscapeParser parser, params byte[][] reads)
    {
        var forwarded = new List<byte>();
        var commands = new List<ConsoleCommand>();
        foreach (byte[] read in reads)
        {
            ReadOnlySpan<byte> input = read;
            byte[] buffer = new byte[read.Length];
            while (!input.IsEmpty)
            {
                ConsoleCommand command = parser.Parse(input, buffer, out int consumed, out int written);
                forwarded.AddRange(buffer.AsSpan(0, written));
                input = input[consumed..];
                if (command != ConsoleCommand.None)
                {
                    commands.Add(command);
                }
            }
        }
        return ([.. forwarded], commands);
    }

    [Fact]
    public void PlainBytes_AreForwardedUnchanged()
    {
        byte[] all = Enumerable.Range(0, 256).Where(b => b != CtrlA).Select(b => (byte)b).ToArray();
        var (forwarded, commands) = Run(new ConsoleEscapeParser(), all);
        Assert.Equal(all, forwarded);
        Assert.Empty(commands);
    }

    [Fact]
    public void CtrlAX_Quits_AfterForwardingWhatCameBefore()
    {
        var parser = new ConsoleEscapeParser();
        byte[] input = [(byte)'l', (byte)'s', CtrlA, (byte)'x', (byte)'z'];
        byte[] buffer = new byte[input.Length];
        ConsoleCommand command = parser.Parse(input, buffer, out int consumed, out int written);
        Assert.Equal(ConsoleCommand.Quit, command);
        Assert.Equal(4, consumed);
        Assert.Equal("ls"u8.ToArray(), buffer[..written]);
    }

    [Fact]
    public void UppercaseX_AlsoQuits()
    {
        var (_, commands) = Run(new ConsoleEscapeParser(), [CtrlA, (byte)'X']);
        Assert.Equal([ConsoleCommand.Quit], commands);
    }

    [Fact]
    public void CtrlACtrlA_SendsOneLiteralCtrlA()
    {
        var (forwarded, commands) = Run(new ConsoleEscapeParser(), [(byte)'a', CtrlA, CtrlA, (byte)'b', CtrlA, CtrlA]);
        Assert.Equal(new byte[] { (byte)'a', CtrlA, (byte)'b', CtrlA }, forwarded);
        Assert.Empty(commands);
    }

    [Fact]
    public void CtrlAH_AsksForHelp_AndParsingContinues()
    {
        var (forwarded, commands) = Run(new ConsoleEscapeParser(), [CtrlA, (byte)'h', (byte)'o', (byte)'k', CtrlA, (byte)'?']);
        Assert.Equal([ConsoleCommand.Help, ConsoleCommand.Help], commands);
        Assert.Equal("ok"u8.ToArray(), forwarded);
    }

    [Fact]
    public void EscapeSplitAcrossReads_StillWorks()
    {
        var parser = new ConsoleEscapeParser();
        var (forwarded, commands) = Run(parser, [(byte)'a', CtrlA], [(byte)'x']);
        Assert.Equal("a"u8.ToArray(), forwarded);
        Assert.Equal([ConsoleCommand.Quit], commands);
        Assert.False(parser.AwaitingCommandKey);
    }

    [Fact]
    public void UnknownCommandKey_IsSwallowed()
    {
        var (forwarded, commands) = Run(new ConsoleEscapeParser(), [CtrlA, (byte)'q', (byte)'r']);
        Assert.Equal("r"u8.ToArray(), forwarded);
        Assert.Empty(commands);
    }

    [Fact]
    public void CustomEscapeByte_IsHonoured_AndCtrlAPassesThrough()
    {
        const byte ctrlB = 0x02;
        var parser = new ConsoleEscapeParser(ctrlB);
        var (forwarded, commands) = Run(parser, [CtrlA, ctrlB, (byte)'x']);
        Assert.Equal(new byte[] { CtrlA }, forwarded);
        Assert.Equal([ConsoleCommand.Quit], commands);
        Assert.Contains("C-b x", parser.HelpText);
    }

    [Fact]
    public void ForwardBufferShorterThanInput_IsRejected()
    {
        var parser = new ConsoleEscapeParser();
        Assert.Throws<ArgumentException>(() => parser.Parse(new byte[4], new byte[3], out _, out _));
    }
}
