/* arm64 PCI: configuration space through the ECAM at PCI_ECAM_BASE (bus 0), the bus-0 scan, BAR sizing, and a
 * small BAR assigner. The VMM assigns BARs itself (there is no firmware) and this code then only reads and sizes
 * them, as ../pci.c does on x86_64; under QEMU nothing assigns them, so a memory BAR that reads 0 is given an address
 * here: 32-bit BARs from the 32-bit window, 64-bit BARs from the device tree's 64-bit window (or from the 32-bit
 * window when the tree has none: QEMU virt with highmem=off). */
#include "../exit_codes.h"
#include "../io.h"
#include "../pci.h"
#include "../serial.h"
#include "arch.h"
#include "layout.h"

#define PCI_VENDOR_ID 0x00
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_HEADER_TYPE 0x0E
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34

#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)
#define PCI_COMMAND_INTX_DISABLE (1u << 10)
#define PCI_STATUS_CAP_LIST (1u << 4)

#define MAX_CAPS 48

static uintptr_t cfg(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    return PCI_ECAM_BASE + ((uintptr_t)bus << 20 | (uintptr_t)(dev & 31) << 15 | (uintptr_t)(fn & 7) << 12 | off);
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

static uint32_t raw_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    check_ecam();
    return mmio_read32(cfg(bus, dev, fn, off & 0xFC));
}

uint8_t pci_read8(const struct pci_dev *d, uint8_t off) { return mmio_read8(cfg(d->bus, d->dev, d->fn, off)); }

uint16_t pci_read16(const struct pci_dev *d, uint8_t off)
{
    return mmio_read16(cfg(d->bus, d->dev, d->fn, off & 0xFE));
}

uint32_t pci_read32(const struct pci_dev *d, uint8_t off) { return raw_read32(d->bus, d->dev, d->fn, off); }

void pci_write8(const struct pci_dev *d, uint8_t off, uint8_t v) { mmio_write8(cfg(d->bus, d->dev, d->fn, off), v); }

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    mmio_write16(cfg(d->bus, d->dev, d->fn, off & 0xFE), v);
}

void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v)
{
    mmio_write32(cfg(d->bus, d->dev, d->fn, off & 0xFC), v);
}

bool pci_find(uint16_t vendor_id, uint16_t device_id, struct pci_dev *out)
{
    return pci_find_nth(vendor_id, device_id, 0, out);
}

bool pci_find_nth(uint16_t vendor_id, uint16_t device_id, unsigned nth, struct pci_dev *out)
{
    for (uint8_t dev = 0; dev < 32; dev++) {
        for (uint8_t fn = 0; fn < 8; fn++) {
            uint32_t ids = raw_read32(0, dev, fn, PCI_VENDOR_ID);
            if ((ids & 0xFFFF) == 0xFFFF) {
                if (fn == 0)
                    break;
                continue;
            }
            if ((ids & 0xFFFF) == vendor_id && (ids >> 16) == device_id && nth-- == 0) {
                *out = (struct pci_dev){ .bus = 0, .dev = dev, .fn = fn, .vendor_id = vendor_id,
                                         .device_id = device_id };
                out->revision = pci_read8(out, PCI_REVISION);
                return true;
            }
            if (fn == 0 && !(raw_read32(0, dev, 0, PCI_HEADER_TYPE & 0xFC) >> 16 & 0x80))
                break;
        }
    }
    return false;
}

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

void pci_setup_bars_and_enable(struct pci_dev *d)
{
    uint16_t command = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, (uint16_t)(command & ~(PCI_COMMAND_MEMORY | 1u)));

    for (int i = 0; i < 6; i++) {
        uint8_t off = (uint8_t)(PCI_BAR0 + 4 * i);
        uint32_t lo = pci_read32(d, off);
        struct pci_bar *bar = &d->bars[i];
        *bar = (struct pci_bar){ 0 };
        if (lo & 1) {
            /* I/O BARs: sized for the record; there is no I/O space here and the program never uses them. */
            pci_write32(d, off, 0xFFFFFFFF);
            uint32_t mask = pci_read32(d, off) & 0xFFFFFFFCu;
            pci_write32(d, off, lo);
            bar->is_io = true;
            bar->base = lo & 0xFFFFFFFCu;
            bar->size = mask ? (uint64_t)((~mask & 0xFFFF) + 1) : 0;
            continue;
        }
        uint32_t type = (lo >> 1) & 3;
        if (type == 2) {
            if (i == 5)
                fw_fail(EXIT_PCI_ERROR, "BAR5 claims to be 64-bit");
            uint8_t off_hi = (uint8_t)(off + 4);
            uint32_t hi = pci_read32(d, off_hi);
            pci_write32(d, off, 0xFFFFFFFF);
            pci_write32(d, off_hi, 0xFFFFFFFF);
            uint64_t mask = ((uint64_t)pci_read32(d, off_hi) << 32) | (pci_read32(d, off) & 0xFFFFFFF0u);
            bar->is_64bit = true;
            bar->base = ((uint64_t)hi << 32) | (lo & 0xFFFFFFF0u);
            bar->size = mask ? ~mask + 1 : 0;
            if (bar->size != 0 && bar->base == 0) {
                bar->base = assign(i, bar->size, true);
                lo = (lo & 0xF) | (uint32_t)bar->base;
                hi = (uint32_t)(bar->base >> 32);
            }
            pci_write32(d, off, lo);
            pci_write32(d, off_hi, hi);
            d->bars[i + 1] = (struct pci_bar){ 0 };
            i++;
        } else if (type == 0) {
            pci_write32(d, off, 0xFFFFFFFF);
            uint32_t mask = pci_read32(d, off) & 0xFFFFFFF0u;
            bar->base = lo & 0xFFFFFFF0u;
            bar->size = mask ? (uint64_t)(~mask + 1) : 0;
            if (bar->size != 0 && bar->base == 0) {
                bar->base = assign(i, bar->size, false);
                lo = (lo & 0xF) | (uint32_t)bar->base;
            }
            pci_write32(d, off, lo);
        } else {
            fw_fail(EXIT_PCI_ERROR, "BAR%d has reserved memory type %u", i, type);
        }
        if (bar->size != 0 && !in_windows(bar->base, bar->size))
            fw_fail(EXIT_PCI_ERROR, "BAR%d [0x%lx, +0x%lx) lies outside the PCI windows [0x%x, 0x%x) and [0x%lx, 0x%lx)",
                    i, bar->base, bar->size, PCI_MMIO32_BASE, PCI_MMIO32_END, (uint64_t)PCI_MMIO64_BASE,
                    (uint64_t)PCI_MMIO64_END);
    }

    pci_write16(d, PCI_COMMAND,
                (uint16_t)((command & ~1u) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE));
}

uint8_t pci_find_capability(const struct pci_dev *d, uint8_t cap_id, uint8_t after)
{
    if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    uint8_t ptr = pci_read8(d, PCI_CAP_PTR) & 0xFC;
    bool past = after == 0;
    for (int n = 0; n < MAX_CAPS && ptr >= 0x40; n++) {
        uint8_t id = pci_read8(d, ptr);
        if (past && id == cap_id)
            return ptr;
        if (ptr == after)
            past = true;
        ptr = pci_read8(d, (uint8_t)(ptr + 1)) & 0xFC;
    }
    return 0;
}
