/* The page allocator: one bit per page of RAM (1 = free). */
#include "page.h"
#include "alloc-tracker.h"
#include "lib.h"
#include "uart.h"

/* QEMU virt's RAM starts here; `make qemu` and the tests give it 128 MiB (-m 128M). */
#define RAM_BASE 0x80000000UL
#define RAM_SIZE (128UL << 20)
#define RAM_PAGES (RAM_SIZE / PAGE_SIZE)

extern char __kernel_end[];

static uint64_t free_bits[RAM_PAGES / 64];
static size_t first_page; /* first page index the allocator manages */
static size_t nfree;

static int is_free(size_t i) { return (free_bits[i / 64] >> (i % 64)) & 1; }
static void set_free(size_t i, int f) {
    if (f)
        free_bits[i / 64] |= 1UL << (i % 64);
    else
        free_bits[i / 64] &= ~(1UL << (i % 64));
}

void page_init(void) {
    first_page = ((uint64_t)__kernel_end - RAM_BASE + PAGE_SIZE - 1) / PAGE_SIZE;
    for (size_t i = first_page; i < RAM_PAGES; i++)
        set_free(i, 1);
    nfree = RAM_PAGES - first_page;
}

paddr_t alloc_pages(size_t npages, pid_t owner, char *tag) {
    if (npages == 0 || npages > nfree)
        return 0;
    size_t run = 0;
    for (size_t i = first_page; i < RAM_PAGES; i++) {
        run = is_free(i) ? run + 1 : 0;
        if (run < npages)
            continue;
        size_t start = i + 1 - npages;
        paddr_t pa = RAM_BASE + start * PAGE_SIZE;
        if (track_alloc(pa, npages, owner, tag) != 0)
            return 0; /* table full: the pages were never taken */
        for (size_t p = start; p <= i; p++)
            set_free(p, 0);
        nfree -= npages;
        memset((void *)pa, 0, npages * PAGE_SIZE);
        return pa;
    }
    return 0;
}

void page_release(paddr_t pa, size_t npages) {
    size_t start = (pa - RAM_BASE) / PAGE_SIZE;
    for (size_t p = start; p < start + npages; p++) {
        if (p < first_page || p >= RAM_PAGES || is_free(p)) {
            uart_printf("[page] release of pa=0x%lx: not an allocated page; ignored\n",
                        RAM_BASE + p * PAGE_SIZE);
            continue;
        }
        set_free(p, 1);
        nfree++;
    }
}

void free_pages(paddr_t pa, size_t npages) {
    if (track_free(pa, npages) != 0) {
        uart_printf("[tracker] invalid free: pa=0x%lx npages=%lu is not a tracked allocation\n",
                    pa, npages);
        return;
    }
    page_release(pa, npages);
}

void free_page(paddr_t pa) { free_pages(pa, 1); }

size_t free_page_count(void) { return nfree; }
