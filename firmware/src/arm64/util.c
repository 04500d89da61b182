/* arm64 versions of util.c's memset and memcpy (that file uses x86 string instructions; the rest is in mem.c).
 * The compiler emits calls to memset/memcpy for structure copies and clears, so these must not be turned back into
 * such calls: build.sh compiles this file with -fno-tree-loop-distribute-patterns. */
#include "../util.h"

/* Word accesses that may alias any object (these routines copy and clear every type). */
typedef uint64_t __attribute__((may_alias)) word_t;

void *memset(void *dst, int value, size_t n)
{
    uint8_t *d = dst;
    uint64_t v = (uint8_t)value * 0x0101010101010101ull;
    while (n != 0 && ((uintptr_t)d & 7) != 0) {
        *d++ = (uint8_t)value;
        n--;
    }
    for (; n >= 8; n -= 8, d += 8)
        *(word_t *)d = v;
    while (n--)
        *d++ = (uint8_t)value;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    /* Word copies when both are equally aligned (the usual case: structures); RAM is Normal memory, so the
     * misaligned head and tail are just bytes. */
    if ((((uintptr_t)d ^ (uintptr_t)s) & 7) == 0) {
        while (n != 0 && ((uintptr_t)d & 7) != 0) {
            *d++ = *s++;
            n--;
        }
        for (; n >= 8; n -= 8, d += 8, s += 8)
            *(word_t *)d = *(const word_t *)s;
    }
    while (n--)
        *d++ = *s++;
    return dst;
}
