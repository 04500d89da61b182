/* The frame checksum. It must equal the device side's definition (branch `media`,
 * Vmm.Devices.VirtioMedia/Backends/TestPattern/TestPatternImage.Checksum): CRC-32C (Castagnoli, reflected
 * polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF) over the image bytes in memory order.
 * Change it here only; everything else calls frame_checksum(). */
#ifndef FW_CHECKSUM_H
#define FW_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Builds the software table and picks the CPU's CRC-32C instruction when the CPU reports it (checksum_hw.h: SSE4.2
 * on x86_64, found by CPUID in ring 3, i.e. on the CPU the code really runs on; the CRC32 extension on arm64).
 * Returns the method name for the log. */
const char *checksum_init(void);

uint32_t frame_checksum(const void *data, size_t len);

#endif
