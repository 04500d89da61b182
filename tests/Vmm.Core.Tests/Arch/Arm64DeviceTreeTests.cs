using System.Diagnostics;
using Vmm.Core.Arch.Arm64;
using Vmm.Core.DeviceTree;

namespace Vmm.Core.Tests.Arch;

/// <summary>The arm64 device tree, decompiled by Debian's dtc (device-tree-compiler) and compared with the tree we
/// mean to describe; and the blob writer's own rules.</summary>
public sealed class Arm64DeviceTreeTests
{
    private const string Dtc = "/usr/bin/dtc";

    /// <summary>Skips, saying why, when dtc is missing; under CI=true a missing dtc fails instead (build.sh installs
    /// it).</summary>
    public sealed class DtcFactAttribute : FactAttribute
    {
        public DtcFactAttribute()
        {
            if (!File.Exists(Dtc) && Environment.GetEnvironmentVariable("CI") != "true")
            {
                Skip = "dtc is not installed (Debian package device-tree-compiler; ./build.sh test installs it)";
            }
        }
    }

    private const string Expected = """
/dts-v1/;

/ {
	compatible = "linux,dummy-virt";
	#address-cells = <0x02>;
	#size-cells = <0x02>;
	interrupt-parent = <0x01>;

	chosen {
		bootargs = "console=ttyAMA0 quiet";
		stdout-path = "/pl011@9000000";
		linux,initrd-start = <0x00 0x48000000>;
		linux,initrd-end = <0x00 0x48100000>;
	};

	memory@40000000 {
		device_type = "memory";
		reg = <0x00 0x40000000 0x00 0x10000000>;
	};

	cpus {
		#address-cells = <0x01>;
		#size-cells = <0x00>;

		cpu@0 {
			device_type = "cpu";
			compatible = "arm,arm-v8";
			enable-method = "psci";
			reg = <0x00>;
		};

		cpu@1 {
			device_type = "cpu";
			compatible = "arm,arm-v8";
			enable-method = "psci";
			reg = <0x01>;
		};
	};

	psci {
		compatible = "arm,psci-1.0\0arm,psci-0.2";
		method = "hvc";
	};

	intc@8000000 {
		compatible = "arm,gic-v3";
		#interrupt-cells = <0x03>;
		interrupt-controller;
		reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0x40000>;
		#address-cells = <0x02>;
		#size-cells = <0x02>;
		ranges;
		phandle = <0x01>;

		its@8080000 {
			compatible = "arm,gic-v3-its";
			msi-controller;
			#msi-cells = <0x01>;
			reg = <0x00 0x8080000 0x00 0x20000>;
			phandle = <0x02>;
		};
	};

	timer {
		compatible = "arm,armv8-timer";
		interrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 0x01 0x0a 0x04>;
		always-on;
	};

	apb-pclk {
		compatible = "fixed-clock";
		#clock-cells = <0x00>;
		clock-frequency = <0x16e3600>;
		clock-output-names = "clk24mhz";
		phandle = <0x03>;
	};

	pl011@9000000 {
		compatible = "arm,pl011\0arm,primecell";
		reg = <0x00 0x9000000 0x00 0x1000>;
		interrupts = <0x00 0x01 0x04>;
		clocks = <0x03 0x03>;
		clock-names = "uartclk\0apb_pclk";
	};

	pcie@3f000000 {
		compatible = "pci-host-ecam-generic";
		device_type = "pci";
		#address-cells = <0x03>;
		#size-cells = <0x02>;
		#interrupt-cells = <0x01>;
		reg = <0x00 0x3f000000 0x00 0x100000>;
		bus-range = <0x00 0x00>;
		linux,pci-domain = <0x00>;
		dma-coherent;
		ranges = <0x2000000 0x00 0x10000000 0x00 0x10000000 0x00 0x2eff0000 0x43000000 0x80 0x00 0x80 0x00 0x80 0x00>;
		interrupt-map-mask = <0x1800 0x00 0x00 0x07>;
		interrupt-map = <0x00 0x00 0x00 0x01 0x01 0x00 0x00 0x00 0x03 0x04 0x00 0x00 0x00 0x02 0x01 0x00 0x00 0x00 0x04 0x04 0x00 0x00 0x00 0x03 0x01 0x00 0x00 0x00 0x05 0x04 0x00 0x00 0x00 0x04 0x01 0x00 0x00 0x00 0x06 0x04 0x800 0x00 0x00 0x01 0x01 0x00 0x00 0x00 0x04 0x04 0x800 0x00 0x00 0x02 0x01 0x00 0x00 0x00 0x05 0x04 0x800 0x00 0x00 0x03 0x01 0x00 0x00 0x00 0x06 0x04 0x800 0x00 0x00 0x04 0x01 0x00 0x00 0x00 0x03 0x04 0x1000 0x00 0x00 0x01 0x01 0x00 0x00 0x00 0x05 0x04 0x1000 0x00 0x00 0x02 0x01 0x00 0x00 0x00 0x06 0x04 0x1000 0x00 0x00 0x03 0x01 0x00 0x00 0x00 0x03 0x04 0x1000 0x00 0x00 0x04 0x01 0x00 0x00 0x00 0x04 0x04 0x1800 0x00 0x00 0x01 0x01 0x00 0x00 0x00 0x06 0x04 0x1800 0x00 0x00 0x02 0x01 0x00 0x00 0x00 0x03 0x04 0x1800 0x00 0x00 0x03 0x01 0x00 0x00 0x00 0x04 0x04 0x1800 0x00 0x00 0x04 0x01 0x00 0x00 0x00 0x05 0x04>;
		msi-map = <0x00 0x02 0x00 0x10000>;
	};
};
""";

    [DtcFact]
    public void Dtc_decompiles_the_tree_to_exactly_the_expected_source()
    {
        byte[] blob = Arm64DeviceTree.Create(new Arm64MachineSpec(256UL << 20, 2, "console=ttyAMA0 quiet", (0x4800_0000, 0x4810_0000)));
        string path = Path.Combine(Path.GetTempPath(), $"vmm-arm64-{Environment.ProcessId}.dtb");
        File.WriteAllBytes(path, blob);
        try
        {
            var psi = new ProcessStartInfo(Dtc) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { "-I", "dtb", "-O", "dts", "-o", "-", path })
            {
                psi.ArgumentList.Add(a);
            }
            using Process p = Process.Start(psi)!;
            Task<string> stderr = p.StandardError.ReadToEndAsync();
            string dts = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            Assert.Equal("", stderr.Result); // no warnings either
            Assert.Equal(Expected.ReplaceLineEndings("\n").TrimEnd(), dts.TrimEnd());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void The_blob_has_a_version_17_header_and_names_each_property_once()
    {
        var fdt = new FdtWriter();
        fdt.BeginNode("");
        fdt.PropertyCells("#address-cells", 2);
        fdt.BeginNode("a");
        fdt.PropertyCells("#address-cells", 1);
        fdt.EndNode();
        fdt.EndNode();
        byte[] blob = fdt.Finish();
        Assert.Equal(0xd00dfeedu, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob));
        Assert.Equal((uint)blob.Length, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(4)));
        Assert.Equal(17u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(20)));
        Assert.Equal((uint)"#address-cells\0".Length, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(32)));
    }

    [Fact]
    public void Nodes_must_nest_and_close()
    {
        var fdt = new FdtWriter();
        Assert.Throws<InvalidOperationException>(() => fdt.PropertyCells("x", 1));
        Assert.Throws<InvalidOperationException>(() => fdt.BeginNode("child"));
        fdt.BeginNode("");
        Assert.Throws<ArgumentException>(() => fdt.BeginNode("a/b"));
        Assert.Throws<InvalidOperationException>(() => fdt.Finish());
        fdt.EndNode();
        Assert.Throws<InvalidOperationException>(() => fdt.EndNode());
        fdt.Finish();
        Assert.Throws<InvalidOperationException>(() => fdt.BeginNode(""));
    }

    [Fact]
    public void More_cpus_than_redistributors_fit_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Arm64DeviceTree.Create(new Arm64MachineSpec(1UL << 30, Arm64Layout.MaxCpus + 1, "")));
        Assert.Throws<ArgumentOutOfRangeException>(() => Arm64DeviceTree.Create(new Arm64MachineSpec(1UL << 30, 0, "")));
    }
}
