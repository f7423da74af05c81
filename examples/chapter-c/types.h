/* Basic types of the chapter-c example kernel (freestanding: no libc headers but the
 * compiler's own stdint.h/stddef.h). */
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef uint64_t paddr_t; /* a physical address */
typedef int pid_t;        /* a process id; 0 = the kernel */

#define PAGE_SIZE 4096UL
