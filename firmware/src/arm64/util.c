/* arm64 versions of util.c's routines (that file uses x86 string instructions). The compiler emits calls to
 * memset/memcpy for structure copies and clears, so these must not be turned back into such calls: build.sh
 * compiles this file with -fno-tree-loop-distribute-patterns. */
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

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
