/* The two C library functions the compiler may call on its own (struct copies, zeroing). */
#pragma once
#include "types.h"

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
