/* PCI configuration access, bus-0 scan, BAR discovery. pci.c is portable; each architecture provides the
 * configuration accessors and pci_arch_place_bar: pci_cf8.c on x86_64 (type 1, ports 0xCF8/0xCFC; BARs are
 * pre-assigned, by our VMM or under QEMU by SeaBIOS, and never moved), arm64/pci_ecam.c on arm64 (ECAM; a BAR that
 * reads 0 is assigned, as QEMU leaves them). */
#ifndef FW_PCI_H
#define FW_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct pci_bar {
    uint64_t base;  /* 0 when the BAR is absent */
    uint64_t size;
    bool is_io;
    bool is_64bit;
};

struct pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor_id, device_id;
    uint8_t revision;
    struct pci_bar bars[6];
};

uint8_t pci_read8(const struct pci_dev *d, uint8_t off);
uint16_t pci_read16(const struct pci_dev *d, uint8_t off);
uint32_t pci_read32(const struct pci_dev *d, uint8_t off);
void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v);
void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v);

/* Finds the first function on bus 0 with the ids; fills bus/dev/fn/ids. Returns false if absent. */
bool pci_find(uint16_t vendor_id, uint16_t device_id, struct pci_dev *out);

/* The same for the function with the ids that comes `nth` (0 = first) in bus order. */
bool pci_find_nth(uint16_t vendor_id, uint16_t device_id, unsigned nth, struct pci_dev *out);

/* Byte writes (attack mode: odd offsets and widths). */
void pci_write8(const struct pci_dev *d, uint8_t off, uint8_t v);

/* The architecture's word on a sized memory BAR (size != 0; bar->base is what the BAR read), called while the BAR
 * still holds the sizing pattern: returns the address pci.c writes back, or fails with EXIT_PCI_ERROR. x86_64: the
 * BAR as it is, which must be assigned and inside the identity map; arm64: assigned from a window if 0, and inside
 * the PCI windows. */
uint64_t pci_arch_place_bar(int i, const struct pci_bar *bar);

/* Reads and sizes all BARs (decoding is off while sizing), then enables memory space and bus mastering.
 * Fails with EXIT_PCI_ERROR on an inconsistent BAR or one pci_arch_place_bar refuses (outside the mapped range). */
void pci_setup_bars_and_enable(struct pci_dev *d);

/* Capability list walk: returns the offset of the next capability with `cap_id` after `after` (0 = from the
 * start), or 0. The walk is bounded so a looping list cannot hang the program. */
uint8_t pci_find_capability(const struct pci_dev *d, uint8_t cap_id, uint8_t after);

#endif
