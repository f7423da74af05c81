/* The page allocator: a bitmap over RAM from the end of the kernel image to the end of RAM,
 * first fit, contiguous runs. Every page it hands out through alloc_pages is tracked. */
#pragma once
#include "types.h"

void page_init(void);
/* `npages` contiguous zeroed pages owned by `owner`, recorded in the tracker with `tag` (a
 * string literal). Returns their physical address, or 0 when RAM or the tracker is full. */
paddr_t alloc_pages(size_t npages, pid_t owner, char *tag);
/* Frees exactly what one alloc_pages returned. An untracked (pa, npages) is refused, reported
 * on the console and changes nothing. */
void free_pages(paddr_t pa, size_t npages);
/* free_pages(pa, 1), the chapter's name. */
void free_page(paddr_t pa);
/* Gives pages back to the allocator without the tracker: only for pages whose entry the
 * tracker has just removed (free_all_tracked_for_pid). */
void page_release(paddr_t pa, size_t npages);
/* Pages free in the allocator. */
size_t free_page_count(void);
