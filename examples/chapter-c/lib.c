/* memset and memcpy for a freestanding kernel. The volatile destination keeps the compiler
 * from turning the loops back into calls to these very functions. */
#include "lib.h"

void *memset(void *dst, int c, size_t n) {
    volatile unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    volatile unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}
