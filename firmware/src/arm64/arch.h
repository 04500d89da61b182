/* arm64 side of ../arch.h: the start-up facts main.c prints and the command line from the device tree. */
#ifndef FW_ARM64_ARCH_H
#define FW_ARM64_ARCH_H

#include <stdint.h>

#include "../cmdline.h"

#define ARCH_BANNER "arm64, EL1, MMU and caches on"

/* Set by boot.S: CNTVCT_EL0 at the first instruction, x0 at entry (the DTB), where the image runs. */
extern uint64_t arm64_entry_ticks;
extern uint64_t arm64_dtb_paddr;
extern uint64_t arm64_image_base;

static inline uint64_t arch_entry_ticks(void) { return arm64_entry_ticks; }
/* No port I/O on arm64, so nothing is ever trapped and emulated. */
static inline uint64_t arch_port_io_traps(void) { return 0; }

/* Reads /chosen/bootargs from the device tree at arm64_dtb_paddr (fdt.c) and parses it. */
void arch_parse_cmdline(struct fw_params *p);

/* What fdt.c found about the PCI host bridge (the node with device_type "pci"), for arm64/pci_ecam.c: the ECAM
 * base from `reg` and the 64-bit memory window from `ranges` (0 when the tree has none, e.g. QEMU virt with
 * highmem=off). */
struct arm64_pci_host {
    int found;
    uint64_t ecam_base, ecam_size;
    uint64_t mmio64_base, mmio64_size;
};
extern struct arm64_pci_host arm64_pci_host;

#endif
