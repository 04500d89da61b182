using Vmm.Core.Interop;

namespace Vmm.Core.Tests.Interop;

/// <summary>Only a negative descriptor is invalid: 0 is what a process started with stdin closed gets from its
/// first open, and treating it as invalid would leak it and fail the open that returned it.</summary>
public sealed class FileDescriptorHandleTests
{
    [Fact]
    public void Descriptor_0_is_valid_and_negative_ones_are_not()
    {
        using var zero = new FileDescriptorHandle(0, ownsHandle: false);
        Assert.False(zero.IsInvalid);
        Assert.Equal(0, zero.Fd);
        using var failed = new FileDescriptorHandle(-1);
        Assert.True(failed.IsInvalid);
        using var empty = new FileDescriptorHandle();
        Assert.True(empty.IsInvalid);
    }
}
