using Vmm.FramePng;

namespace Vmm.Testing.VirtioMedia;

/// <summary>PNG output for the embedded testbed's frames. An extension rather than a member of
/// <see cref="TestbedFrame"/>, so the testbed's core needs no image encoder.</summary>
public static class TestbedFramePng
{
    /// <summary>Writes the frame as the guest's mapping shows it, converted to RGB, as the PNG file
    /// <paramref name="path"/>.</summary>
    public static void SavePng(this TestbedFrame frame, string path) =>
        FramePngWriter.SaveFrame(path, frame.Layout, frame.Plane(0), frame.PlaneCount > 1 ? frame.Plane(1) : default,
            frame.PlaneCount > 2 ? frame.Plane(2) : default);
}
