/* The string routines with no architecture in them, shared by the x86_64 and arm64 builds; memset and memcpy are
 * per architecture (util.c: x86 string instructions; arm64/util.c: word loops). build.sh compiles this file with
 * -fno-tree-loop-distribute-patterns so that the loops below never become calls to memmove or memcmp. */
#include "util.h"

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
