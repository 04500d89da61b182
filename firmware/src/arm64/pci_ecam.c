/* The arm64 half of ../pci.c: configuration space through the ECAM at PCI_ECAM_BASE (bus 0), and a small BAR
 * assigner. The VMM assigns BARs itself (there is no firmware) and ../pci.c then only reads and sizes them, as on
 * x86_64; under QEMU nothing assigns them, so a memory BAR that reads 0 is given an address here: 32-bit BARs from
 * the 32-bit window, 64-bit BARs from the device tree's 64-bit window (or from the 32-bit window when the tree has
 * none: QEMU virt with highmem=off). */
#include "../exit_codes.h"
#include "../io.h"
#include "../pci.h"
#include "arch.h"
#include "layout.h"

static uintptr_t cfg(const struct pci_dev *d, uint8_t off)
{
    return PCI_ECAM_BASE +
           ((uintptr_t)d->bus << 20 | (uintptr_t)(d->dev & 31) << 15 | (uintptr_t)(d->fn & 7) << 12 | off);
}

/* The first config access checks that the device tree (if it describes a PCI host) agrees with our ECAM address:
 * the page tables map only the low 1 GiB as Device memory. */
static void check_ecam(void)
{
    static bool checked;
    if (checked)
        return;
    checked = true;
    if (arm64_pci_host.found && arm64_pci_host.ecam_base != PCI_ECAM_BASE)
        fw_fail(EXIT_PCI_ERROR, "the device tree puts the PCI ECAM at 0x%lx; this firmware uses 0x%x "
                "(QEMU: -M virt,highmem=off)", arm64_pci_host.ecam_base, PCI_ECAM_BASE);
}

uint8_t pci_read8(const struct pci_dev *d, uint8_t off) { return mmio_read8(cfg(d, off)); }

uint16_t pci_read16(const struct pci_dev *d, uint8_t off) { return mmio_read16(cfg(d, off & 0xFE)); }

/* The scan's first read is a 32-bit one: it makes the ECAM check. */
uint32_t pci_read32(const struct pci_dev *d, uint8_t off)
{
    check_ecam();
    return mmio_read32(cfg(d, off & 0xFC));
}

void pci_write8(const struct pci_dev *d, uint8_t off, uint8_t v) { mmio_write8(cfg(d, off), v); }

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v) { mmio_write16(cfg(d, off & 0xFE), v); }

void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v) { mmio_write32(cfg(d, off & 0xFC), v); }

/* Next free address in each window (the assigner never frees: BARs are assigned once per boot). */
static uint64_t next32 = PCI_MMIO32_BASE;
static uint64_t next64;

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static uint64_t assign(int i, uint64_t size, bool is_64bit)
{
    if (is_64bit && next64 == 0 && arm64_pci_host.mmio64_size != 0)
        next64 = arm64_pci_host.mmio64_base;
    bool high = is_64bit && next64 != 0;
    uint64_t *next = high ? &next64 : &next32;
    uint64_t limit = high ? arm64_pci_host.mmio64_base + arm64_pci_host.mmio64_size : PCI_MMIO32_END;
    uint64_t base = align_up(*next, size < 4096 ? 4096 : size);
    if (base + size < base || base + size > limit)
        fw_fail(EXIT_PCI_ERROR, "BAR%d (size 0x%lx) does not fit the %s PCI window", i, size, high ? "64-bit" : "32-bit");
    *next = base + size;
    return base;
}

/* Our identity map: the 32-bit window is Device memory, the 64-bit one Normal write-back (RAM-backed shared
 * memory). A BAR anywhere else would be in RAM or unmapped. */
static bool in_windows(uint64_t base, uint64_t size)
{
    uint64_t end = base + size;
    if (end < base)
        return false;
    return (base >= PCI_MMIO32_BASE && end <= PCI_MMIO32_END) || (base >= PCI_MMIO64_BASE && end <= PCI_MMIO64_END);
}

/* A BAR that reads 0 is assigned; then, assigned here or not, it must lie in one of the windows. */
uint64_t pci_arch_place_bar(int i, const struct pci_bar *bar)
{
    uint64_t base = bar->base != 0 ? bar->base : assign(i, bar->size, bar->is_64bit);
    if (!in_windows(base, bar->size))
        fw_fail(EXIT_PCI_ERROR, "BAR%d [0x%lx, +0x%lx) lies outside the PCI windows [0x%x, 0x%x) and [0x%lx, 0x%lx)",
                i, base, bar->size, PCI_MMIO32_BASE, PCI_MMIO32_END, (uint64_t)PCI_MMIO64_BASE,
                (uint64_t)PCI_MMIO64_END);
    return base;
}
