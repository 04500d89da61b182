using Vmm.Core.Boot;
using Vmm.Core.Memory;
using Xunit.Abstractions;

namespace Vmm.Core.Tests.Boot;

/// <summary>
/// Deterministic mutation runs: corrupted kernel files must end in a <see cref="KernelImageException"/> or
/// <see cref="BootException"/> (one sentence for the user) or in a successful load — never in any other exception.
/// </summary>
public sealed class HostileImageTests(ITestOutputHelper output)
{
    public static TheoryData<string> Images => ["elf", "bz-gzip", "bz-xz", "bz-lz4", "bz-zstd"];

    private static byte[] Image(string kind)
    {
        byte[] elf = TestElf.Kernel(pvh: true, textSize: 0x4000, dataSize: 0x1000, bssSize: 0x1000);
        return kind switch
        {
            "elf" => elf,
            "bz-gzip" => TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Gzip, elf, out _)),
            "bz-xz" => TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Xz, elf, out _)),
            "bz-lz4" => TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Lz4, elf, out _)),
            _ => TestBzImage.Build(KernelCompressors.Compress(PayloadCompression.Zstd, elf, out _)),
        };
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void MutatedImages_FailWithOneSentenceOrLoad(string kind)
    {
        byte[] original = Image(kind);
        using GuestMemory mem = GuestMemory.CreateAnonymous((new GuestAddress(0), 64UL << 20));
        var rng = new Random(1234);
        int loaded = 0, rejected = 0;
        var options = new BootOptions { MaxUncompressedKernelSize = 16 << 20 };
        for (int iteration = 0; iteration < 400; iteration++)
        {
            byte[] file = (byte[])original.Clone();
            int flips = 1 + rng.Next(4);
            for (int f = 0; f < flips; f++)
            {
                // Mostly headers (where the parsers live), sometimes anywhere.
                int headerArea = kind == "elf" ? 64 + 3 * 56 + 0x20 : 0x1000;
                int limit = rng.Next(4) == 0 ? file.Length : Math.Min(file.Length, headerArea);
                int at = rng.Next(limit);
                file[at] = rng.Next(3) switch
                {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => (byte)rng.Next(256),
                };
            }
            try
            {
                LinuxBootLoader.Load(mem, file, [1, 2, 3], KernelCmdline.Default(), options);
                loaded++;
            }
            catch (Exception e) when (e is KernelImageException or BootException)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                rejected++;
            }
        }
        output.WriteLine($"{kind}: {loaded} loaded, {rejected} rejected");
        Assert.True(rejected > 0, "no mutation was rejected: the mutator is not reaching the parsers");
    }
}
