namespace Vmm.Core.Arch.Arm64;

/// <summary>
/// The arm64 guest-physical memory map, after QEMU's <c>virt</c> machine (which Linux and Debian's arm64 kernels
/// know best): the GICv3 and its ITS, a PL011 UART, a generic ECAM PCIe host with 32- and 64-bit windows, and RAM
/// from 1 GiB.
/// </summary>
public static class Arm64Layout
{
    public const ulong GicDistributor = 0x0800_0000, GicDistributorSize = 0x1_0000;
    public const ulong GicIts = 0x0808_0000, GicItsSize = 0x2_0000;
    /// <summary>One GICv3 redistributor per vCPU (RD_base and SGI_base frames, 64 KiB each).</summary>
    public const ulong GicRedistributors = 0x080A_0000, GicRedistributorSizePerCpu = 0x2_0000;
    public const ulong Uart = 0x0900_0000, UartSize = 0x1000;
    /// <summary>The PL011's shared peripheral interrupt (SPI 1).</summary>
    public const uint UartSpi = 1;
    /// <summary>The four SPIs PCI INTA#–INTD# are swizzled over (QEMU virt's 3–6), for drivers without MSI-X.</summary>
    public const uint PciIntxFirstSpi = 3, PciIntxSpiCount = 4;

    /// <summary>The SPI that INTx <paramref name="pin"/> (1 = INTA#) of the device in <paramref name="slot"/> raises: the
    /// standard swizzle, which the device tree's interrupt-map spells out.</summary>
    public static uint PciIntxSpi(int slot, int pin = 1) => PciIntxFirstSpi + (uint)((slot + pin - 1) % (int)PciIntxSpiCount);

    public const ulong PciMmio32 = 0x1000_0000, PciMmio32Size = 0x2EFF_0000;
    /// <summary>ECAM for bus 0 (1 MiB: 32 devices × 8 functions × 4 KiB).</summary>
    public const ulong PciEcam = 0x3F00_0000, PciEcamSize = 0x10_0000;
    public const ulong RamStart = 0x4000_0000;
    /// <summary>64-bit prefetchable BARs (virtio-media's shared-memory region).</summary>
    public const ulong PciMmio64 = 0x80_0000_0000, PciMmio64Size = 0x80_0000_0000;

    /// <summary>A register for the debug-exit device (a write of V ends the VM with exit code V), the MMIO twin of
    /// the x86 port 0x501 that test guests without Linux end with. Not in the device tree: Linux never sees it.</summary>
    public const ulong DebugExit = 0x0901_0000, DebugExitSize = 0x1000;

    /// <summary>The affinity fields of vCPU <paramref name="index"/>'s MPIDR_EL1 as KVM sets them by default
    /// (reset_mpidr: Aff0 = the low 4 bits of the vCPU id, Aff1 the next 8), which is the cpu node's reg.</summary>
    public static uint MpidrAffinity(int index) => (uint)(index & 0xF) | (uint)((index >> 4) & 0xFF) << 8;

    /// <summary>Most vCPUs whose redistributors fit below the UART.</summary>
    public const int MaxCpus = (int)((Uart - GicRedistributors) / GicRedistributorSizePerCpu);
}
