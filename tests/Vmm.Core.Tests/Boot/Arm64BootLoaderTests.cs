using System.Buffers.Binary;
using System.Text;
using Vmm.Core.Arch.Arm64;
using Vmm.Core.Boot;
using Vmm.Core.Memory;

namespace Vmm.Core.Tests.Boot;

/// <summary>The arm64 loader: where the Image, the initrd and the device tree land, what the boot vCPU gets, and the
/// one-sentence refusals of files and sizes that do not fit.</summary>
public sealed class Arm64BootLoaderTests
{
    private const ulong MiB = 1UL << 20;

    private static GuestMemory Ram(ulong bytes) => GuestMemory.CreateAnonymous((new GuestAddress(Arm64Layout.RamStart), bytes));

    private static byte[] Marked(byte[] image)
    {
        // Recognisable bytes after the header, so the test can tell the copy is the whole image.
        for (int i = 64; i < image.Length; i++)
        {
            image[i] = (byte)(i * 7);
        }
        return image;
    }

    [Fact]
    public void The_image_goes_to_its_text_offset_and_the_dtb_and_initrd_to_the_top_of_ram()
    {
        using GuestMemory ram = Ram(64 * MiB);
        byte[] image = Marked(Arm64TestImages.Image(textOffset: 0x8_0000, imageSize: 0x20_0000));
        byte[] initrd = Encoding.ASCII.GetBytes(new string('i', 5000));
        LinuxBootResult r = Arm64BootLoader.Load(ram, image, initrd, KernelCmdline.Create("console=ttyAMA0 rdinit=/init"), cpus: 2);

        var cpu = Assert.IsType<Arm64BootCpuState>(r.Cpu);
        Assert.Equal(0x4008_0000UL, cpu.Pc);
        Assert.Equal(Arm64Layout.RamStart + 62 * MiB, cpu.DeviceTree); // the last 2 MiB
        Assert.True(ram.GetSpan(new GuestAddress(cpu.Pc), (ulong)image.Length).SequenceEqual(image));
        Assert.Equal((0x4008_0000UL, 0x4028_0000UL), (r.KernelStart, r.KernelEnd));

        Assert.Equal(0UL, r.InitrdAddress % 4096);
        Assert.True(r.InitrdAddress + (ulong)initrd.Length <= cpu.DeviceTree);
        Assert.True(cpu.DeviceTree - (r.InitrdAddress + (ulong)initrd.Length) < 4096);
        Assert.True(ram.GetSpan(new GuestAddress(r.InitrdAddress), (ulong)initrd.Length).SequenceEqual(initrd));

        // The tree in RAM is the one for exactly this machine: RAM size, CPUs, command line and initrd range.
        byte[] expected = Arm64DeviceTree.Create(new Arm64MachineSpec(64 * MiB, 2, "console=ttyAMA0 rdinit=/init",
            (r.InitrdAddress, r.InitrdAddress + (ulong)initrd.Length)));
        Assert.True(ram.GetSpan(new GuestAddress(cpu.DeviceTree), (ulong)expected.Length).SequenceEqual(expected));
        Assert.Equal(0xD00D_FEEDu, BinaryPrimitives.ReadUInt32BigEndian(ram.GetSpan(new GuestAddress(cpu.DeviceTree), 4)));
        Assert.Equal((KernelImageKind.Arm64Image, BootMethod.Arm64), (r.ImageKind, r.Method));
    }

    [Fact]
    public void A_gzip_vmlinuz_and_a_gzip_zboot_image_load_the_same_bytes_as_the_plain_image()
    {
        byte[] image = Marked(Arm64TestImages.Image(imageSize: 0x20_0000, length: 0x4_0000));
        byte[] gz = Arm64TestImages.Gzip(image);
        byte[] zboot = new byte[0x200 + gz.Length];
        "MZ"u8.CopyTo(zboot);
        "zimg"u8.CopyTo(zboot.AsSpan(4));
        BinaryPrimitives.WriteUInt32LittleEndian(zboot.AsSpan(8), 0x200);
        BinaryPrimitives.WriteUInt32LittleEndian(zboot.AsSpan(12), (uint)gz.Length);
        "gzip"u8.CopyTo(zboot.AsSpan(24));
        gz.CopyTo(zboot.AsSpan(0x200));

        foreach (byte[] file in new[] { gz, zboot })
        {
            using GuestMemory ram = Ram(32 * MiB);
            LinuxBootResult r = Arm64BootLoader.Load(ram, file, [], KernelCmdline.Create(""), 1);
            Assert.Equal(PayloadCompression.Gzip, r.Compression);
            Assert.True(ram.GetSpan(new GuestAddress(r.KernelStart), (ulong)image.Length).SequenceEqual(image));
        }
    }

    [Fact]
    public void Zboot_payloads_other_than_gzip_and_non_arm64_files_are_refused_in_one_sentence()
    {
        byte[] zboot = new byte[0x300];
        "MZ"u8.CopyTo(zboot);
        "zimg"u8.CopyTo(zboot.AsSpan(4));
        BinaryPrimitives.WriteUInt32LittleEndian(zboot.AsSpan(8), 0x200);
        BinaryPrimitives.WriteUInt32LittleEndian(zboot.AsSpan(12), 0x100);
        "zstd22"u8.CopyTo(zboot.AsSpan(24));
        using GuestMemory ram = Ram(32 * MiB);
        var e = Assert.Throws<KernelImageException>(() => Arm64BootLoader.Load(ram, zboot, [], KernelCmdline.Create(""), 1));
        Assert.Contains("zstd22", e.Message);

        BinaryPrimitives.WriteUInt32LittleEndian(zboot.AsSpan(12), 0x1000); // payload beyond the file
        e = Assert.Throws<KernelImageException>(() => Arm64BootLoader.Load(ram, zboot, [], KernelCmdline.Create(""), 1));
        Assert.Contains("outside the file", e.Message);

        e = Assert.Throws<KernelImageException>(() => Arm64BootLoader.Load(ram, "plain text, not a kernel"u8.ToArray(), [], KernelCmdline.Create(""), 1));
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Sizes_that_do_not_fit_guest_ram_are_boot_errors()
    {
        byte[] image = Arm64TestImages.Image(imageSize: 0x20_0000);
        using (GuestMemory tiny = Ram(3 * MiB))
        {
            Assert.Throws<BootException>(() => Arm64BootLoader.Load(tiny, image, [], KernelCmdline.Create(""), 1));
        }
        using (GuestMemory ram = Ram(8 * MiB))
        {
            // 8 MiB: kernel 2 MiB, DTB the last 2 MiB; a 5 MiB initrd cannot fit between them.
            var e = Assert.Throws<BootException>(() => Arm64BootLoader.Load(ram, image, new byte[5 * MiB], KernelCmdline.Create(""), 1));
            Assert.Contains("initrd", e.Message);
            Arm64BootLoader.Load(ram, image, new byte[3 * MiB], KernelCmdline.Create(""), 1); // 4 MiB of room: fits
        }
        using (GuestMemory ram = Ram(4 * MiB))
        {
            byte[] big = Arm64TestImages.Image(imageSize: 0x30_0000);
            var e = Assert.Throws<BootException>(() => Arm64BootLoader.Load(ram, big, [], KernelCmdline.Create(""), 1));
            Assert.Contains("device tree", e.Message);
        }
    }

    [Fact]
    public void Ram_that_is_not_one_region_at_1_GiB_is_refused()
    {
        using GuestMemory low = GuestMemory.CreateAnonymous((new GuestAddress(0), 32 * MiB));
        Assert.Throws<BootException>(() => Arm64BootLoader.Load(low, Arm64TestImages.Image(), [], KernelCmdline.Create(""), 1));
    }
}
