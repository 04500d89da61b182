/* The x86_64 half of pci.c: configuration space through type-1 accesses (ports 0xCF8/0xCFC), and BARs taken as
 * they are (our VMM assigns them; under QEMU SeaBIOS does). */
#include "exit_codes.h"
#include "io.h"
#include "layout.h"
#include "pci.h"

#define PCI_CONFIG_ADDRESS 0xCF8
#define PCI_CONFIG_DATA 0xCFC

static uint32_t config_address(const struct pci_dev *d, uint8_t off)
{
    return 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 | (uint32_t)d->fn << 8 | (off & 0xFCu);
}

uint8_t pci_read8(const struct pci_dev *d, uint8_t off)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    return inb((uint16_t)(PCI_CONFIG_DATA + (off & 3)));
}

uint16_t pci_read16(const struct pci_dev *d, uint8_t off)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    return inw((uint16_t)(PCI_CONFIG_DATA + (off & 2)));
}

uint32_t pci_read32(const struct pci_dev *d, uint8_t off)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    return inl(PCI_CONFIG_DATA);
}

void pci_write8(const struct pci_dev *d, uint8_t off, uint8_t v)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    outb((uint16_t)(PCI_CONFIG_DATA + (off & 3)), v);
}

void pci_write16(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    outw((uint16_t)(PCI_CONFIG_DATA + (off & 2)), v);
}

void pci_write32(const struct pci_dev *d, uint8_t off, uint32_t v)
{
    outl(PCI_CONFIG_ADDRESS, config_address(d, off));
    outl(PCI_CONFIG_DATA, v);
}

/* Nothing is assigned here: the BAR must already have an address, inside the identity map. */
uint64_t pci_arch_place_bar(int i, const struct pci_bar *bar)
{
    if (bar->base == 0)
        fw_fail(EXIT_PCI_ERROR, "BAR%d (size 0x%lx) is not assigned", i, bar->size);
    if (bar->base + bar->size < bar->base || bar->base + bar->size > MAPPED_LIMIT)
        fw_fail(EXIT_PCI_ERROR, "BAR%d [0x%lx, +0x%lx) lies outside the identity map (%u GiB)", i, bar->base,
                bar->size, MAPPED_GIB);
    return bar->base;
}
