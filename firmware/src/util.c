#include "util.h"

void *memset(void *dst, int value, size_t n)
{
    /* rep stosb: native speed in ring 3; the compiler must not turn this loop into a call to itself. */
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(value) : "memory");
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}
