/* The chapter's allocation tracker: one slot per live allocation of physical pages, with its
 * owner PID and a tag. Leakscope's inspector reads `alloc_table` (and `alloc_table_count`)
 * through the ELF's DWARF by these names: keep the names of the symbols and of the fields.
 *
 * Contracts:
 * - Every change of `alloc_table`/`alloc_table_count` is made by track_alloc, track_free or
 *   free_all_tracked_for_pid, in their own code and with no call in the middle of a change,
 *   and never by an interrupt handler. A reader that halts the guest with its pc outside those
 *   three functions therefore sees a consistent table (docs/your-kernel.md).
 * - `tag` points to a string that lives as long as the kernel (a literal): the inspector reads
 *   it whenever it likes, long after the caller returned. */
#pragma once
#include "types.h"

#define MAX_TRACKED_ALLOCS (4096 * 2)

typedef struct {
    int used;      /* 1 = entry in use */
    paddr_t pa;    /* physical start address */
    size_t npages; /* number of pages */
    pid_t owner;   /* process ID (0 = kernel) */
    char *tag;     /* descriptive tag, a string with static storage */
} alloc_track_t;

extern alloc_track_t alloc_table[MAX_TRACKED_ALLOCS];
extern size_t alloc_table_count;

/* Records pages [pa, pa + npages * PAGE_SIZE) as owned by `owner`. Returns 0, or -1 when the
 * table is full (then nothing is recorded: the caller must give the pages back). */
int track_alloc(paddr_t pa, size_t npages, pid_t owner, char *tag);
/* Forgets the allocation of exactly (pa, npages). Returns 0, or -1 when there is none (an
 * invalid free: the caller must not release the pages). */
int track_free(paddr_t pa, size_t npages);
/* Prints every live allocation: `== OUTSTANDING ALLOCS ==`, then one
 * `PA=0x… npages=N owner=P tag=T` line each, in slot order. */
void dump_allocs(void);
/* Prints `pid`'s live allocations (with debug_flag set; nothing otherwise). */
void dump_allocs_for_pid(int pid, int debug_flag);
/* Forgets every allocation `pid` still owns and gives its pages back to the page allocator:
 * the leaks of a process that exited. Prints the chapter's report with debug_flag set. */
void free_all_tracked_for_pid(pid_t pid, int debug_flag);
