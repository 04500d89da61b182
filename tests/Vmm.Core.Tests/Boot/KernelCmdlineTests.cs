using System.Text;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

public sealed class KernelCmdlineTests
{
    [Fact]
    public void Default_IsTheDocumentedUserPart()
    {
        KernelCmdline c = KernelCmdline.Default();
        Assert.Equal(KernelCmdline.DefaultUserParameters, c.ToString());
        Assert.True(c.Contains("console"));
        Assert.True(c.Contains("i8042.noaux"));
        Assert.False(c.Contains("consol"));
    }

    [Fact]
    public void UserCmdline_ReplacesTheDefault_VmmPartsAreAppended()
    {
        KernelCmdline c = KernelCmdline.Create("console=hvc0  root=/dev/vda")
            .AddVmmParameters("noxsave clearcpuid=popcnt,smap");
        Assert.Equal("console=hvc0 root=/dev/vda noxsave clearcpuid=popcnt,smap", c.ToString());
        Assert.False(c.Contains("reboot"));
        Assert.Equal("console=hvc0 root=/dev/vda", c.UserPart);
        Assert.Equal("noxsave clearcpuid=popcnt,smap", c.VmmPart);
    }

    [Fact]
    public void VmmParts_GoBeforeTheInitSeparator()
    {
        KernelCmdline c = KernelCmdline.Create("quiet -- --init-flag  value").AddVmmParameters("rodata=off");
        Assert.Equal("quiet rodata=off -- --init-flag  value", c.ToString());
        Assert.Equal("--init-flag  value", c.InitArguments);
    }

    [Fact]
    public void QuotedValues_AreOneToken()
    {
        KernelCmdline c = KernelCmdline.Create("a=\"x -- y\" b").AddVmmParameter("dyndbg", "file foo.c +p");
        Assert.Null(c.InitArguments);
        Assert.Equal("a=\"x -- y\" b dyndbg=\"file foo.c +p\"", c.ToString());
    }

    [Fact]
    public void EmptyUserCmdline_MeansNoUserParameters()
    {
        Assert.Equal("panic=1", KernelCmdline.Create("").AddVmmParameters("panic=1").ToString());
    }

    [Fact]
    public void Nul_UnbalancedQuotes_BadNames_AreRejected()
    {
        Assert.Contains("NUL", Assert.Throws<BootException>(() => KernelCmdline.Create("a\0b")).Message);
        Assert.Contains("quote", Assert.Throws<BootException>(() => KernelCmdline.Create("a=\"b")).Message);
        Assert.Throws<BootException>(() => KernelCmdline.Default().AddVmmParameters("x -- y"));
        Assert.Throws<BootException>(() => KernelCmdline.Default().AddVmmParameter("a b", "1"));
        Assert.Throws<BootException>(() => KernelCmdline.Default().AddVmmParameter("a", "x\"y"));
    }

    [Fact]
    public void ToBytes_IsNulTerminated_AndEnforcesTheLimit()
    {
        KernelCmdline c = KernelCmdline.Create(new string('a', 100));
        byte[] bytes = c.ToBytes(100);
        Assert.Equal(101, bytes.Length);
        Assert.Equal(0, bytes[^1]);
        Assert.Equal(new string('a', 100), Encoding.ASCII.GetString(bytes, 0, 100));
        Assert.Contains("at most 99", Assert.Throws<BootException>(() => c.ToBytes(99)).Message);
    }

    [Fact]
    public void MaxLength_FitsTheCommandLineArea()
    {
        Assert.Equal((int)Vmm.Core.Arch.X86.X86Layout.CmdlineMaxSize - 1, KernelCmdline.MaxLength);
        Assert.Equal(KernelCmdline.MaxLength + 1, KernelCmdline.Create(new string('x', KernelCmdline.MaxLength)).ToBytes(KernelCmdline.MaxLength).Length);
    }
}
