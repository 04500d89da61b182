using System.Buffers.Binary;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

public sealed class BzImageHeaderTests
{
    [Fact]
    public void Parse_ReadsTheFieldsAtTheirBootProtocolOffsets()
    {
        byte[] payload = TestElf.Pattern(3000, 1);
        byte[] file = TestBzImage.Build(payload, setupSects: 30, version: 0x020F, cmdlineSize: 2047, initrdAddrMax: 0x7FFF_FFFF);
        BzImageHeader h = BzImageHeader.Parse(file);

        Assert.Equal(0x020F, h.Version);
        Assert.Equal(30, h.SetupSectors);
        Assert.Equal(31 * 512, h.SetupSize);
        Assert.Equal(0x10_0000u, h.Code32Start);
        Assert.Equal(0x7FFF_FFFFu, h.InitrdAddrMax);
        Assert.Equal(0x20_0000u, h.KernelAlignment);
        Assert.True(h.Relocatable);
        Assert.Equal(2047u, h.CmdlineSize);
        Assert.Equal(0x100_0000ul, h.PrefAddress);
        Assert.Equal(0x26C, h.HeaderEnd);
        Assert.Equal(payload, h.Payload(file).ToArray());
        Assert.Equal(file.AsSpan(31 * 512).ToArray(), h.ProtectedModeCode(file).ToArray());
    }

    [Fact]
    public void SetupSectsZero_MeansFour()
    {
        byte[] payload = TestElf.Pattern(100, 2);
        byte[] file = TestBzImage.Build(payload, setupSects: 0);
        BzImageHeader h = BzImageHeader.Parse(file);
        Assert.Equal(4, h.SetupSectors);
        Assert.Equal(payload, h.Payload(file).ToArray());
    }

    [Fact]
    public void OldProtocol_IsRejected()
    {
        byte[] file = TestBzImage.Build(new byte[100], version: 0x0205);
        Assert.Contains("2.05", Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(file)).Message);
    }

    [Fact]
    public void Protocol207_ParsesButHasNoPayloadFields()
    {
        byte[] file = TestBzImage.Build(new byte[100], version: 0x0207);
        BzImageHeader h = BzImageHeader.Parse(file);
        Assert.False(h.HasPayloadFields);
        Assert.Contains("in-guest decompression", Assert.Throws<KernelImageException>(() => h.Payload(file)).Message);
    }

    [Fact]
    public void ZImage_IsRejected()
    {
        byte[] file = TestBzImage.Build(new byte[100], loadFlags: 0);
        Assert.Contains("zImage", Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(file)).Message);
    }

    [Fact]
    public void MissingSignature_IsRejected()
    {
        byte[] file = TestBzImage.Build(new byte[100]);
        file[0x202] = (byte)'X';
        Assert.False(BzImageHeader.HasSignature(file));
        Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(file));
    }

    [Fact]
    public void Truncated_AtEveryLength_IsAKernelImageException()
    {
        byte[] file = TestBzImage.Build(TestElf.Pattern(2000, 3));
        int payloadEnd = file.Length - 64; // TestBzImage leaves 64 bytes after the payload
        for (int n = 0x206; n < payloadEnd; n += 97)
        {
            byte[] cut = file[..n];
            // Either the setup area or the payload no longer fits; never another exception type.
            Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(cut));
        }
    }

    [Theory]
    [InlineData(0xFFFF_FFF0u, 16u)]   // offset past the end
    [InlineData(16u, 0xFFFF_FFF0u)]   // length past the end
    [InlineData(0x8000_0000u, 0x8000_0010u)] // sum wraps in 32 bits
    [InlineData(0u, 2u)]              // too short to hold the size trailer
    public void PayloadOutsideTheImage_IsRejected(uint offset, uint length)
    {
        byte[] file = TestBzImage.Build(new byte[100], payloadOffset: offset, payloadLength: length);
        Assert.Contains("payload", Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(file)).Message);
    }

    [Fact]
    public void SetupSectsBeyondFile_IsRejected()
    {
        byte[] file = TestBzImage.Build(new byte[100]);
        file[0x1F1] = 200; // 201 * 512 bytes of setup: more than the file
        Assert.Contains("truncated", Assert.Throws<KernelImageException>(() => BzImageHeader.Parse(file)).Message);
    }

    [Fact]
    public void RawHeader_IsTheBytesFrom0x1F1ToTheJumpTarget()
    {
        byte[] file = TestBzImage.Build(new byte[100]);
        BzImageHeader h = BzImageHeader.Parse(file);
        ReadOnlySpan<byte> raw = h.RawHeader(file);
        Assert.Equal(0x26C - 0x1F1, raw.Length);
        Assert.Equal(0xAA55, BinaryPrimitives.ReadUInt16LittleEndian(raw[(0x1FE - 0x1F1)..]));
    }
}
