/* The portable PCI code: the bus-0 scan, BAR sizing and the capability walk, over the architecture's configuration
 * accessors and its BAR hook (pci.h): pci_cf8.c on x86_64, arm64/pci_ecam.c on arm64. */
#include "exit_codes.h"
#include "pci.h"

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

/* 48 capabilities of 4 bytes minimum fit in the 192 bytes after the header: more means a loop. */
#define MAX_CAPS 48

bool pci_find(uint16_t vendor_id, uint16_t device_id, struct pci_dev *out)
{
    return pci_find_nth(vendor_id, device_id, 0, out);
}

bool pci_find_nth(uint16_t vendor_id, uint16_t device_id, unsigned nth, struct pci_dev *out)
{
    for (uint8_t dev = 0; dev < 32; dev++) {
        for (uint8_t fn = 0; fn < 8; fn++) {
            struct pci_dev probe = { .bus = 0, .dev = dev, .fn = fn };
            uint32_t ids = pci_read32(&probe, PCI_VENDOR_ID);
            if ((ids & 0xFFFF) == 0xFFFF) {
                if (fn == 0)
                    break; /* no device: skip its other functions */
                continue;
            }
            if ((ids & 0xFFFF) == vendor_id && (ids >> 16) == device_id && nth-- == 0) {
                *out = (struct pci_dev){ .bus = 0, .dev = dev, .fn = fn, .vendor_id = vendor_id,
                                         .device_id = device_id };
                out->revision = pci_read8(out, PCI_REVISION);
                return true;
            }
            if (fn == 0 && !(pci_read32(&probe, PCI_HEADER_TYPE & 0xFC) >> 16 & 0x80))
                break; /* single-function device */
        }
    }
    return false;
}

void pci_setup_bars_and_enable(struct pci_dev *d)
{
    uint16_t command = pci_read16(d, PCI_COMMAND);
    /* Sizing writes all-ones to the BARs; with decoding on, that would briefly map the BAR at a bogus address. */
    pci_write16(d, PCI_COMMAND, (uint16_t)(command & ~(PCI_COMMAND_MEMORY | 1u)));

    for (int i = 0; i < 6; i++) {
        uint8_t off = (uint8_t)(PCI_BAR0 + 4 * i);
        uint32_t lo = pci_read32(d, off);
        struct pci_bar *bar = &d->bars[i];
        *bar = (struct pci_bar){ 0 };
        if (lo & 1) {
            /* I/O BARs: sized for the record (arm64 has no I/O space); the program never uses them. */
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
            if (bar->size != 0)
                bar->base = pci_arch_place_bar(i, bar);
            /* The value read, or the address the hook gave the BAR. */
            pci_write32(d, off, (lo & 0xF) | (uint32_t)bar->base);
            pci_write32(d, off_hi, (uint32_t)(bar->base >> 32));
            d->bars[i + 1] = (struct pci_bar){ 0 };
            i++; /* the upper half is not a BAR of its own */
        } else if (type == 0) {
            pci_write32(d, off, 0xFFFFFFFF);
            uint32_t mask = pci_read32(d, off) & 0xFFFFFFF0u;
            bar->base = lo & 0xFFFFFFF0u;
            bar->size = mask ? (uint64_t)(~mask + 1) : 0;
            if (bar->size != 0)
                bar->base = pci_arch_place_bar(i, bar);
            pci_write32(d, off, (lo & 0xF) | (uint32_t)bar->base);
        } else {
            fw_fail(EXIT_PCI_ERROR, "BAR%d has reserved memory type %u", i, type);
        }
    }

    /* Memory space + bus master (the device reads our rings); INTx off, everything is polled. */
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
