/* arm64 CRC-32C instructions (the CRC32 extension: optional in ARMv8.0, e.g. present on Cortex-A53/A57/A72;
 * mandatory from ARMv8.1). Included by ../checksum_hw.h. The build targets plain armv8-a, so the instructions are
 * enabled for the assembler only here and run only when ID_AA64ISAR0_EL1.CRC32 says they exist. */
#ifndef FW_ARM64_CHECKSUM_HW_H
#define FW_ARM64_CHECKSUM_HW_H

#include <stdbool.h>
#include <stdint.h>

#define CRC32C_HW_NAME "crc32c-armv8"

static inline bool crc32c_hw_probe(void)
{
    uint64_t isar0;
    __asm__ volatile("mrs %0, id_aa64isar0_el1" : "=r"(isar0));
    return ((isar0 >> 16) & 0xF) != 0;
}

static inline uint64_t crc32c_hw_u64(uint64_t c, uint64_t w)
{
    uint32_t c32 = (uint32_t)c;
    __asm__(".arch_extension crc\n\tcrc32cx %w0, %w0, %x1" : "+r"(c32) : "r"(w));
    return c32;
}

static inline uint32_t crc32c_hw_u8(uint32_t c, uint8_t b)
{
    __asm__(".arch_extension crc\n\tcrc32cb %w0, %w0, %w1" : "+r"(c) : "r"((uint32_t)b));
    return c;
}

#endif
