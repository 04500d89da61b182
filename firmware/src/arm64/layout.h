/* The arm64 machine this firmware expects (the VMM's Arm64Layout, after QEMU's virt machine with highmem=off) and
 * its own memory layout. Preprocessor-only: included from assembly. */
#ifndef FW_ARM64_LAYOUT_H
#define FW_ARM64_LAYOUT_H

/* The image is linked here and relocates itself (R_AARCH64_RELATIVE) when loaded elsewhere. */
#define LINK_BASE           0x40000000

#define RAM_START           0x40000000
#define UART_BASE           0x09000000          /* PL011, polled */
#define DEBUG_EXIT_BASE     0x09010000          /* a 1/2/4-byte write of V ends the VM with exit code V */
#define PCI_ECAM_BASE       0x3F000000          /* bus 0 only: 1 MiB */
#define PCI_MMIO32_BASE     0x10000000
#define PCI_MMIO32_END      0x3EFF0000
#define PCI_MMIO64_BASE     0x8000000000        /* 512 GiB: RAM-backed shared-memory BARs */
#define PCI_MMIO64_END      0x10000000000       /* 1 TiB */

/* The identity map (boot.S): [0, 1 GiB) Device-nGnRE (MMIO, ECAM, UART), [1 GiB, 1 TiB) Normal write-back
 * inner shareable (RAM and the 64-bit PCI window), 1 GiB blocks, 40-bit VA starting at level 0. */
#define DEVICE_LIMIT        0x40000000
#define MAPPED_LIMIT_ARM64  0x10000000000

/* PSCI 0.2 function id, called with hvc #0 when the debug-exit write did not end the VM (QEMU). */
#define PSCI_SYSTEM_OFF     0x84000008

#define MAIN_STACK_SIZE      65536
#define EXCEPTION_STACK_SIZE 16384

#endif
