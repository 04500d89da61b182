/* Constants shared by boot.S and the C code. Keep this file preprocessor-only (it is included from assembly). */
#ifndef FW_LAYOUT_H
#define FW_LAYOUT_H

/* GDT selectors. Order: null, kernel code, kernel data, user data, user code, TSS (two slots). */
#define SEL_KERNEL_CODE 0x08
#define SEL_KERNEL_DATA 0x10
#define SEL_USER_DATA   0x1B /* 0x18 | RPL 3 */
#define SEL_USER_CODE   0x23 /* 0x20 | RPL 3 */
#define SEL_TSS         0x28

/* Identity map covers [0, MAPPED_LIMIT): the low 4 GiB plus the 64-bit PCI window where the VMM places
 * shared-memory BARs. 2 MiB pages, 64 page directories, generated at assembly time so that no CPL0
 * instruction (each one emulated at ~0.55 us on the target host) is spent building them. */
#ifndef MAPPED_GIB /* the host-side test harness raises it to cover a host address space */
#define MAPPED_GIB      64
#endif
#ifndef __ASSEMBLER__
#define MAPPED_LIMIT    ((unsigned long long)MAPPED_GIB << 30)
#endif

/* User mode runs with IOPL 3 (port I/O without exits to the kernel) and interrupts off (everything is polled). */
#define USER_RFLAGS     0x3002

#define KERNEL_STACK_SIZE 16384
#define USER_STACK_SIZE   65536

#endif
