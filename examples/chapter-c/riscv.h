/* The few RISC-V instructions the example needs. */
#pragma once
#include "types.h"

/* The `time` CSR: ticks of the platform timer (10 MHz on QEMU virt). */
static inline uint64_t read_time(void) {
    uint64_t t;
    __asm__ volatile("rdtime %0" : "=r"(t));
    return t;
}

#define TIMEBASE_HZ 10000000UL
