using Vmm.Devices.VirtioMedia.Backends.TestPattern;
using Vmm.Devices.VirtioMedia.Protocol;
using Vmm.Testing.VirtioMedia;
using Vmm.Devices.VirtioMedia.V4l2;

namespace Vmm.Devices.VirtioMedia.Tests;

/// <summary>CREATE_BUFS size rules as vb2 applies them (v4l2-compliance's testReqBufs checks each).</summary>
public sealed class CreateBuffersTests
{
    [Theory]
    [InlineData(0u, Errno.EINVAL)]            // vb2: a plane size of 0 is not allowed
    [InlineData(320u * 240, Errno.EINVAL)]    // half of YUYV 320x240
    [InlineData(320u * 240 * 2, 0)]           // exactly the format's size
    [InlineData(320u * 240 * 4, 0)]           // larger buffers are allowed
    public void Requested_sizeimage_must_cover_the_current_format(uint sizeImage, int expected)
    {
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 320, Height = 240 });
        using TestbedSession s = bed.OpenSession();
        s.SetFormat(FourCc.Yuyv, 320, 240);
        var create = new V4l2CreateBuffers { Count = 1, Memory = (uint)V4l2Memory.Mmap, Format = new V4l2Format { Type = 1 } };
        create.Format.Pix.SizeImage = sizeImage;
        Assert.Equal(expected, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));
        if (expected == 0)
        {
            Assert.Equal(1u, create.Count);
        }
    }

    [Fact]
    public void Count_zero_is_a_query_and_skips_the_size_checks()
    {
        using var bed = VirtioMediaTestbed.Create(new TestPatternOptions { Width = 320, Height = 240 });
        using TestbedSession s = bed.OpenSession();
        var create = new V4l2CreateBuffers { Count = 0, Memory = (uint)V4l2Memory.Mmap, Format = new V4l2Format { Type = 1 } };
        Assert.Equal(0, s.Ioctl(V4l2IoctlCode.CreateBufs, ref create));
        Assert.Equal(0u, create.MaxNumBuffers); // v4l2-compliance 1.22 reads it as reserved
    }
}
