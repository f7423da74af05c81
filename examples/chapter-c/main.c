/* chapter-c: a small C kernel that follows the chapter's memory-tracking API, as Leakscope's
 * example of "any kernel": boot, console, page allocator, the tracker, and a demo that keeps
 * creating processes which allocate tagged pages, free some and exit leaking the rest.
 *
 * kmain reads as the table of contents: console → page allocator → demo processes →
 * scheduler (never returns). Interrupts are never enabled (sstatus.SIE stays 0). */
#include "alloc-tracker.h"
#include "page.h"
#include "process.h"
#include "riscv.h"
#include "uart.h"

/* Processes the demo keeps alive at once. */
#define DEMO_PROCS 3
/* Most allocations one demo process makes. */
#define DEMO_MAX_ALLOCS 5

static char *const demo_tags[] = {"alloc_pages", "buffer", "page_table"};

/* One demo process: 2..5 allocations of 1..3 pages with tags, a pause, the explicit frees
 * (every other allocation, never the last), a longer pause, then exit: what is left is a
 * leak, which free_proc reclaims and reports. The pauses let a reader that takes snapshots
 * every few tens of milliseconds tell an explicit free from an exit's reclaim. */
static void demo_proc(void) {
    pid_t pid = current()->pid;
    int n = 2 + pid % 4;
    paddr_t pa[DEMO_MAX_ALLOCS];
    size_t np[DEMO_MAX_ALLOCS];
    for (int i = 0; i < n; i++) {
        np[i] = 1 + (size_t)(pid + i) % 3;
        pa[i] = alloc_pages(np[i], pid, demo_tags[(pid + i) % 3]);
        sleep_ms(20);
    }
    sleep_ms(250);
    for (int i = 0; i + 1 < n; i += 2)
        if (pa[i])
            free_pages(pa[i], np[i]);
    sleep_ms(400);
} /* returning exits (proc_exit) */

/* Between scheduler rounds: keeps DEMO_PROCS processes alive, and answers the console:
 * `d` prints dump_allocs. */
static void demo_idle_work(void) {
    while (live_procs() < DEMO_PROCS)
        if (!proc_create("demo", demo_proc))
            break;
    int c = uart_getc();
    if (c == 'd')
        dump_allocs();
    else if (c == 'm')
        uart_printf("mem: free_pages=%lu allocs=%lu\n", free_page_count(), alloc_table_count);
}

void kmain(uint64_t hartid, uint64_t dtb) {
    (void)dtb;
    uart_printf("chapter-c: the chapter's memory tracker in C, on hart %lu\n", hartid);
    page_init();
    uart_printf("chapter-c: %lu pages free; keys: d = dump_allocs, m = page counts\n",
                free_page_count());
    scheduler(demo_idle_work);
}
