/* arm64 MMIO accessors and barriers (included by ../io.h). There is no port I/O.
 *
 * Each MMIO access is one load or store instruction of exactly the named width with a plain base register
 * ([Xn], no writeback, no pair): KVM can only emulate a trapped access whose syndrome is valid (ESR_EL2.ISV), and
 * the compiler may pick post-indexed or paired forms for a volatile access, which it cannot. The rings, frames and
 * everything else are ordinary RAM accesses. */
#ifndef FW_ARM64_IO_H
#define FW_ARM64_IO_H

#include <stdint.h>

static inline uint8_t mmio_read8(uintptr_t addr)
{
    uint32_t v;
    __asm__ volatile("ldrb %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
    return (uint8_t)v;
}

static inline uint16_t mmio_read16(uintptr_t addr)
{
    uint32_t v;
    __asm__ volatile("ldrh %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
    return (uint16_t)v;
}

static inline uint32_t mmio_read32(uintptr_t addr)
{
    uint32_t v;
    __asm__ volatile("ldr %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline void mmio_write8(uintptr_t addr, uint8_t v)
{
    __asm__ volatile("strb %w0, [%1]" : : "rZ"((uint32_t)v), "r"(addr) : "memory");
}

static inline void mmio_write16(uintptr_t addr, uint16_t v)
{
    __asm__ volatile("strh %w0, [%1]" : : "rZ"((uint32_t)v), "r"(addr) : "memory");
}

static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
    __asm__ volatile("str %w0, [%1]" : : "rZ"(v), "r"(addr) : "memory");
}

/* The split ring's ordering points (descriptor before avail entry before avail idx; used idx before the used
 * element): arm64 reorders loads and stores, so this is a real barrier, inner shareable (the device is another
 * CPU: a VMM thread), for loads and stores both. */
static inline void barrier(void) { __asm__ volatile("dmb ish" ::: "memory"); }

/* Before a notification: every earlier RAM store (the avail idx) complete, before the MMIO store that kicks the
 * device and before the load of used.flags that decides whether to kick. */
static inline void full_fence(void) { __asm__ volatile("dsb sy" ::: "memory"); }

static inline void cpu_relax(void) { __asm__ volatile("yield" ::: "memory"); }

#endif
