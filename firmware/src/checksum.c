#include <stdbool.h>

#include "checksum.h"
#include "checksum_hw.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static bool use_hw;

static uint32_t crc32c_soft(uint32_t crc, const uint8_t *p, size_t n)
{
    /* Slicing-by-8: eight table lookups per 8 bytes. */
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24]
              ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        __builtin_memcpy(&w, p, 8);
        c = crc32c_hw_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = crc32c_hw_u8(c32, *p++);
    return c32;
}

const char *checksum_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (c & 1 ? CRC32C_POLY : 0);
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];

    use_hw = crc32c_hw_probe();

    /* Both paths must agree; a disagreement means a broken CPU feature report: fall back to software. */
    static const char probe[] = "123456789abcdefghij";
    if (use_hw && (crc32c_hw(0xFFFFFFFF, (const uint8_t *)probe, sizeof(probe) - 1)
                   != crc32c_soft(0xFFFFFFFF, (const uint8_t *)probe, sizeof(probe) - 1)))
        use_hw = false;
    return use_hw ? CRC32C_HW_NAME : "crc32c-table";
}

uint32_t frame_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t crc = use_hw ? crc32c_hw(0xFFFFFFFF, p, len) : crc32c_soft(0xFFFFFFFF, p, len);
    return crc ^ 0xFFFFFFFF;
}
