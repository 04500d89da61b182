/* The CPU's CRC-32C instructions for checksum.c, one header per architecture: on x86_64 SSE4.2 `crc32` (it works
 * on general registers, so it is usable although the program is built -mgeneral-regs-only; emitted by hand because
 * the build targets baseline x86-64), on arm64 the ARMv8 CRC32 extension (arm64/checksum_hw.h).
 * crc32c_hw_probe() says whether the CPU the code runs on has them (x86: CPUID in ring 3, i.e. the real CPU). */
#ifndef FW_CHECKSUM_HW_H
#define FW_CHECKSUM_HW_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__aarch64__)
#include "arm64/checksum_hw.h"
#else

#define CRC32C_HW_NAME "crc32c-sse4.2"

static inline bool crc32c_hw_probe(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    return (c >> 20) & 1;
}

static inline uint64_t crc32c_hw_u64(uint64_t c, uint64_t w)
{
    __asm__("crc32q %1, %0" : "+r"(c) : "rm"(w));
    return c;
}

static inline uint32_t crc32c_hw_u8(uint32_t c, uint8_t b)
{
    __asm__("crc32b %1, %0" : "+r"(c) : "rm"(b));
    return c;
}

#endif /* !__aarch64__ */
#endif
