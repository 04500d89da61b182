/* What main.c needs from the architecture's start-up code: the first console line's tail, the tick count at the
 * entry point, trapped port accesses, and where the command line comes from. x86_64: boot.S and cpl0.c (PVH entry,
 * ring 3); arm64: arm64/arch.h. */
#ifndef FW_ARCH_H
#define FW_ARCH_H

#include <stdint.h>

#include "cmdline.h"

#if defined(__aarch64__)
#include "arm64/arch.h"
#else
#include "cpl0.h"

#define ARCH_BANNER "long mode, ring 3, IOPL 3"

/* TSC at the PVH entry point. */
static inline uint64_t arch_entry_ticks(void) { return tsc_at_entry; }
/* Port accesses from ring 3 that the #GP handler emulated. */
static inline uint64_t arch_port_io_traps(void) { return emulated_port_io_count; }
/* The PVH command line (hvm_start_info, EBX at entry). */
static inline void arch_parse_cmdline(struct fw_params *p) { cmdline_parse(pvh_start_info_paddr, p); }
#endif

#endif
