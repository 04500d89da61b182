/* A small flattened-device-tree reader (devicetree specification v0.4, chapter 5): the command line from
 * /chosen/bootargs, and the PCI host bridge's ECAM and 64-bit window for arm64/pci_ecam.c. Everything in the blob
 * is checked against its own header before it is read; the blob comes from the loader (x0 at entry). */
#include <stdbool.h>
#include <stdint.h>

#include "../exit_codes.h"
#include "../serial.h"
#include "../util.h"
#include "arch.h"
#include "layout.h"

#define FDT_MAGIC 0xd00dfeedu
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9
#define FDT_MAX_SIZE (2u << 20) /* booting.rst: the DTB is at most 2 MiB */
#define FDT_MAX_DEPTH 64

struct arm64_pci_host arm64_pci_host;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

static bool str_eq(const char *a, size_t a_len, const char *b) { return strlen(b) == a_len && memcmp(a, b, a_len) == 0; }

/* A PCI host node's `reg` and `ranges` (root #address-cells = #size-cells = 2; the node's 3 and 2). */
static void read_pci_host(const uint8_t *reg, uint32_t reg_len, const uint8_t *ranges, uint32_t ranges_len)
{
    struct arm64_pci_host h = { .found = 1 };
    if (reg != 0 && reg_len >= 16) {
        h.ecam_base = be64(reg);
        h.ecam_size = be64(reg + 8);
    }
    for (uint32_t off = 0; ranges != 0 && off + 28 <= ranges_len; off += 28) {
        const uint8_t *r = ranges + off;
        uint32_t space = (be32(r) >> 24) & 3; /* phys.hi ss: 1 I/O, 2 32-bit memory, 3 64-bit memory */
        if (space == 3 && h.mmio64_size == 0) {
            h.mmio64_base = be64(r + 12); /* the CPU address (the PCI address is the same on these machines) */
            h.mmio64_size = be64(r + 20);
        }
    }
    arm64_pci_host = h;
}

/* Walks the tree; returns /chosen/bootargs (NUL-terminated inside the property) or "" when there is none. */
static const char *walk(const uint8_t *fdt)
{
    uint32_t total = be32(fdt + 4), off_struct = be32(fdt + 8), off_strings = be32(fdt + 12);
    uint32_t version = be32(fdt + 20), size_strings = be32(fdt + 32), size_struct = be32(fdt + 36);
    if (total > FDT_MAX_SIZE || total < 40 || version < 17 || off_struct > total || size_struct > total - off_struct
        || off_strings > total || size_strings > total - off_strings || (off_struct & 3) != 0)
        fw_fail(EXIT_BAD_CMDLINE, "device tree header is inconsistent (size 0x%x, version %u)", total, version);
    const uint8_t *p = fdt + off_struct, *end = p + size_struct;
    const char *strings = (const char *)fdt + off_strings;

    const char *bootargs = "";
    int depth = 0;
    bool in_chosen = false, in_pci = false, pci_seen = false;
    uint32_t root_addr_cells = 2, root_size_cells = 2, pci_addr_cells = 3, pci_size_cells = 2;
    const uint8_t *pci_reg = 0, *pci_ranges = 0;
    uint32_t pci_reg_len = 0, pci_ranges_len = 0;
    while (p + 4 <= end) {
        uint32_t token = be32(p);
        p += 4;
        switch (token) {
        case FDT_BEGIN_NODE: {
            const char *name = (const char *)p;
            size_t n = 0;
            while (p + n < end && name[n] != 0)
                n++;
            if (p + n >= end)
                fw_fail(EXIT_BAD_CMDLINE, "device tree: unterminated node name");
            p += (n + 1 + 3) & ~(size_t)3;
            if (++depth > FDT_MAX_DEPTH)
                fw_fail(EXIT_BAD_CMDLINE, "device tree nested deeper than %d", FDT_MAX_DEPTH);
            if (depth == 2) {
                in_chosen = str_eq(name, n, "chosen");
                in_pci = false;
                pci_reg = pci_ranges = 0;
                pci_addr_cells = 3;
                pci_size_cells = 2;
            }
            break;
        }
        case FDT_END_NODE:
            if (depth == 2 && in_pci && !pci_seen) {
                pci_seen = true;
                if (root_addr_cells == 2 && root_size_cells == 2 && pci_addr_cells == 3 && pci_size_cells == 2)
                    read_pci_host(pci_reg, pci_reg_len, pci_ranges, pci_ranges_len);
            }
            if (depth == 2)
                in_chosen = in_pci = false;
            if (--depth < 0)
                fw_fail(EXIT_BAD_CMDLINE, "device tree: unbalanced END_NODE");
            break;
        case FDT_PROP: {
            if (p + 8 > end)
                fw_fail(EXIT_BAD_CMDLINE, "device tree: truncated property");
            uint32_t len = be32(p), nameoff = be32(p + 4);
            const uint8_t *value = p + 8;
            if (len > (uint32_t)(end - value) || nameoff >= size_strings)
                fw_fail(EXIT_BAD_CMDLINE, "device tree: property outside the blob");
            p = value + ((len + 3) & ~3u);
            const char *pname = strings + nameoff;
            size_t pn = 0;
            while (nameoff + pn < size_strings && pname[pn] != 0)
                pn++;
            if (nameoff + pn >= size_strings)
                fw_fail(EXIT_BAD_CMDLINE, "device tree: unterminated property name");
            if (depth == 1 && len == 4 && str_eq(pname, pn, "#address-cells"))
                root_addr_cells = be32(value);
            else if (depth == 1 && len == 4 && str_eq(pname, pn, "#size-cells"))
                root_size_cells = be32(value);
            else if (depth == 2 && in_chosen && str_eq(pname, pn, "bootargs")) {
                if (len == 0 || value[len - 1] != 0)
                    fw_fail(EXIT_BAD_CMDLINE, "device tree: /chosen/bootargs is not a NUL-terminated string");
                bootargs = (const char *)value;
            } else if (depth == 2 && str_eq(pname, pn, "device_type")) {
                in_pci = len == 4 && memcmp(value, "pci", 4) == 0;
            } else if (depth == 2 && str_eq(pname, pn, "reg")) {
                pci_reg = value;
                pci_reg_len = len;
            } else if (depth == 2 && str_eq(pname, pn, "ranges")) {
                pci_ranges = value;
                pci_ranges_len = len;
            } else if (depth == 2 && len == 4 && str_eq(pname, pn, "#address-cells")) {
                pci_addr_cells = be32(value);
            } else if (depth == 2 && len == 4 && str_eq(pname, pn, "#size-cells")) {
                pci_size_cells = be32(value);
            }
            break;
        }
        case FDT_NOP:
            break;
        case FDT_END:
            return bootargs;
        default:
            fw_fail(EXIT_BAD_CMDLINE, "device tree: unknown token 0x%x", token);
        }
    }
    fw_fail(EXIT_BAD_CMDLINE, "device tree: no END token");
}

void arch_parse_cmdline(struct fw_params *p)
{
    uint64_t dtb = arm64_dtb_paddr;
    fw_printf("BOOT image=0x%lx dtb=0x%lx\n", arm64_image_base, dtb);
    /* The DTB must lie in RAM (Normal memory in our map) and be 8-byte aligned (booting.rst). */
    if (dtb < RAM_START || dtb >= PCI_MMIO64_BASE - FDT_MAX_SIZE || (dtb & 7) != 0)
        fw_fail(EXIT_BAD_CMDLINE, "no device tree (x0=0x%lx)", dtb);
    const uint8_t *fdt = (const uint8_t *)(uintptr_t)dtb;
    if (be32(fdt) != FDT_MAGIC)
        fw_fail(EXIT_BAD_CMDLINE, "device tree magic is 0x%x, expected 0x%x (x0=0x%lx)", be32(fdt), FDT_MAGIC, dtb);
    cmdline_parse_text(walk(fdt), p);
}
