/* The only C code that runs at CPL0: one-time setup before the drop to ring 3, and the exception reporter.
 * Compiled with -mgeneral-regs-only. Every instruction here costs ~0.55 us on the target host, so it stays tiny. */
#ifndef FW_CPL0_H
#define FW_CPL0_H

#include <stdint.h>

/* KVM's pvclock_vcpu_time_info (arch/x86/include/asm/pvclock-abi.h): 32 bytes, written by the host. */
struct pvclock_time_info {
    uint32_t version;
    uint32_t pad0;
    uint64_t tsc_timestamp;
    uint64_t system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags;
    uint8_t pad[2];
} __attribute__((packed));

/* What cpl0_init() learned about the TSC (CPUID leaves that ring 3 may not see on this host: at CPL3 CPUID
 * returns raw host values there). Read by timer.c in ring 3. */
struct clock_probe {
    uint64_t cpuid_tsc_hz;      /* from hypervisor leaf 0x40000010 or leaf 0x15; 0 if neither gave a value */
    uint32_t kvmclock_enabled;  /* 1 when MSR_KVM_SYSTEM_TIME_NEW was pointed at kvmclock_info */
    uint32_t pad;
};

extern struct clock_probe clock_probe;
extern volatile struct pvclock_time_info kvmclock_info;
extern uint64_t pvh_start_info_paddr;
/* TSC value at the PVH entry point (the first instructions of the program). */
extern uint64_t tsc_at_entry;
/* Port accesses from ring 3 that the #GP handler had to emulate (non-zero only where IOPL 3 is not honoured). */
extern volatile uint64_t emulated_port_io_count;

void cpl0_init(void);

#endif
