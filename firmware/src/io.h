/* Port and MMIO accessors. Ring 3 runs with IOPL 3, so the port instructions work there without faulting.
 * arm64 (no port I/O, weakly ordered) has its own: arm64/io.h. */
#ifndef FW_IO_H
#define FW_IO_H

#include <stdint.h>

#if defined(__aarch64__)
#include "arm64/io.h"
#else

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t value) { __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t value;
    __asm__ volatile("inw %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* MMIO: one access of exactly the named width (volatile), so the device sees the access size the spec requires. */
static inline uint8_t mmio_read8(uintptr_t addr) { return *(volatile uint8_t *)addr; }
static inline uint16_t mmio_read16(uintptr_t addr) { return *(volatile uint16_t *)addr; }
static inline uint32_t mmio_read32(uintptr_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write8(uintptr_t addr, uint8_t v) { *(volatile uint8_t *)addr = v; }
static inline void mmio_write16(uintptr_t addr, uint16_t v) { *(volatile uint16_t *)addr = v; }
static inline void mmio_write32(uintptr_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }

/* Compiler barrier; x86 keeps stores ordered with stores and loads with loads, which is all the split ring needs
 * between our own accesses (the device runs on another host thread, ordering is TSO). */
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
/* Full fence, used before a notification so the device thread cannot read a stale avail index. */
static inline void full_fence(void) { __asm__ volatile("mfence" ::: "memory"); }

static inline void cpu_relax(void) { __asm__ volatile("pause"); }

#endif /* !__aarch64__ */
#endif
