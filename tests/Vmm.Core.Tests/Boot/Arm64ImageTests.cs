using System.Buffers.Binary;
using System.IO.Compression;
using Vmm.Core.Boot;

namespace Vmm.Core.Tests.Boot;

/// <summary>arm64 kernel files: the Image header, where it loads, and how an x86_64 vmm recognises and refuses one.</summary>
public sealed class Arm64ImageTests
{
    private static byte[] Image(ulong textOffset = 0, ulong imageSize = 0x30000, ulong flags = 0b1010, int length = 0x10000) =>
        Arm64TestImages.Image(textOffset, imageSize, flags, length);

    private static byte[] Gzip(byte[] data) => Arm64TestImages.Gzip(data);

    private static byte[] ElfHeader(ushort machine)
    {
        byte[] elf = new byte[64];
        "\x7f"u8.CopyTo(elf);
        "ELF"u8.CopyTo(elf.AsSpan(1));
        elf[4] = 2;
        elf[5] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(16), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan(18), machine);
        return elf;
    }

    [Fact]
    public void The_header_gives_offset_size_flags_and_a_2_MiB_aligned_place_in_ram()
    {
        Arm64ImageHeader h = Arm64ImageHeader.Parse(Image(textOffset: 0x1000, imageSize: 0x30000));
        Assert.Equal((0x1000UL, 0x30000UL, 4u, false), (h.TextOffset, h.ImageSize, h.PageSizeKiB, h.IsBigEndian));
        Assert.Equal(0x4000_1000UL, h.LoadAddress(0x4000_0000, 256UL << 20));
        Assert.Equal(0x4020_1000UL, h.LoadAddress(0x4000_1000, 256UL << 20)); // the next 2 MiB boundary
        Assert.Throws<BootException>(() => h.LoadAddress(0x4000_0000, 0x20000));
    }

    [Fact]
    public void An_image_without_a_size_is_a_pre_3_17_kernel_at_the_historical_offset()
    {
        Arm64ImageHeader h = Arm64ImageHeader.Parse(Image(textOffset: 0x1234, imageSize: 0));
        Assert.Equal((Arm64ImageHeader.LegacyTextOffset, 0x10000UL), (h.TextOffset, h.ImageSize));
    }

    [Theory]
    [InlineData(0UL, 0x30000UL, 1UL, "big-endian")]
    [InlineData(0UL, 0x100UL, 0UL, "inconsistent")]          // smaller than the file
    [InlineData(0x200000UL, 0x30000UL, 0UL, "inconsistent")] // beyond the 2 MiB alignment
    [InlineData(0x123UL, 0x30000UL, 0UL, "inconsistent")]    // not page-aligned
    public void Bad_headers_are_one_sentence(ulong textOffset, ulong imageSize, ulong flags, string expected)
    {
        var e = Assert.Throws<KernelImageException>(() => Arm64ImageHeader.Parse(Image(textOffset, imageSize, flags)));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_architecture_comes_from_the_file()
    {
        Assert.Equal(KernelArchitecture.Arm64, KernelFiles.DetectArchitecture(Image()));
        Assert.Equal(KernelArchitecture.Arm64, KernelFiles.DetectArchitecture(Gzip(Image()))); // Debian's arm64 vmlinuz
        Assert.Equal(KernelArchitecture.Arm64, KernelFiles.DetectArchitecture(ElfHeader(183)));
        Assert.Equal(KernelArchitecture.X86_64, KernelFiles.DetectArchitecture(ElfHeader(62)));
        Assert.Equal(KernelArchitecture.Unknown, KernelFiles.DetectArchitecture(Gzip(new byte[4096])));
        Assert.Equal(KernelArchitecture.Unknown, KernelFiles.DetectArchitecture("not a kernel"u8));
    }

    [Fact]
    public void The_x86_64_loader_refuses_an_arm64_kernel_in_one_sentence()
    {
        foreach (byte[] kernel in new[] { Image(), Gzip(Image()) })
        {
            var e = Assert.Throws<KernelImageException>(() => LinuxBootLoader.DetectImage(kernel));
            Assert.Equal(LinuxBootLoader.ArmKernelOnX86, e.Message);
        }
        var elf = Assert.Throws<KernelImageException>(() => ElfKernel.Parse(ElfHeader(183)));
        Assert.Equal(LinuxBootLoader.ArmKernelOnX86, elf.Message);
        Assert.DoesNotContain('\n', LinuxBootLoader.ArmKernelOnX86);
    }
}
