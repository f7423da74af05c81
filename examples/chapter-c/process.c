/* Kernel-context processes, a round-robin scheduler and free_proc. */
#include "process.h"
#include "alloc-tracker.h"
#include "riscv.h"
#include "uart.h"

#define STACK_SIZE (4 * PAGE_SIZE)

proc_t proc_table[MAX_PROCS];
/* Process stacks are static, one per slot: they are not pages of the allocator, so each
 * process's tracked pages are exactly what it allocated itself. */
static uint8_t proc_stacks[MAX_PROCS][STACK_SIZE] __attribute__((aligned(16)));
static struct context scheduler_ctx;
static proc_t *running;
static pid_t next_pid = 1;

void swtch(struct context *old, struct context *new);

/* Sets the SBI timer (extension "TIME"): the timer interrupt becomes pending at `when`. */
static void sbi_set_timer(uint64_t when) {
    register uint64_t a0 __asm__("a0") = when;
    register uint64_t a6 __asm__("a6") = 0;
    register uint64_t a7 __asm__("a7") = 0x54494D45;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a6), "r"(a7) : "a1", "memory");
}

proc_t *current(void) { return running; }

static void trampoline(void) {
    running->entry();
    proc_exit();
}

proc_t *proc_create(const char *name, void (*entry)(void)) {
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &proc_table[i];
        if (p->state != UNUSED)
            continue;
        p->pid = next_pid++;
        p->parent = 0;
        int n = 0;
        for (; name[n] && n < (int)sizeof p->name - 1; n++)
            p->name[n] = name[n];
        for (; n < (int)sizeof p->name; n++)
            p->name[n] = 0;
        p->entry = entry;
        p->ctx.ra = (uint64_t)trampoline;
        p->ctx.sp = (uint64_t)&proc_stacks[i][STACK_SIZE];
        p->state = RUNNABLE;
        return p;
    }
    return NULL;
}

void yield(void) {
    proc_t *p = running;
    if (p->state == RUNNING)
        p->state = RUNNABLE;
    swtch(&p->ctx, &scheduler_ctx);
}

void sleep_ms(unsigned ms) {
    running->wake_time = read_time() + ms * (TIMEBASE_HZ / 1000);
    running->state = SLEEPING;
    yield();
}

void proc_exit(void) {
    running->state = ZOMBIE;
    swtch(&running->ctx, &scheduler_ctx);
    for (;;)
        ; /* a zombie is never switched to again */
}

void free_proc(proc_t *proc) {
    /* Whatever the process still owns is a leak: the chapter's sweep gives it back. */
    free_all_tracked_for_pid(proc->pid, REPORT_EXITS);
    dump_allocs_for_pid(proc->pid, REPORT_EXITS);
    proc->state = UNUSED;
    proc->pid = 0;
}

int live_procs(void) {
    int n = 0;
    for (int i = 0; i < MAX_PROCS; i++)
        n += proc_table[i].state != UNUSED;
    return n;
}

/* Waits with `wfi` until the timer says `until` (or sooner). Interrupts stay off in sstatus:
 * an interrupt enabled in `sie` only wakes `wfi`, it is never taken. */
static void idle_until(uint64_t until) {
    sbi_set_timer(until);
    __asm__ volatile("csrs sie, %0" ::"r"(1UL << 5)); /* STIE */
    while (read_time() < until)
        __asm__ volatile("wfi");
    sbi_set_timer(UINT64_MAX); /* clears the pending timer interrupt */
}

void scheduler(void (*idle_work)(void)) {
    for (;;) {
        uint64_t now = read_time();
        uint64_t next_wake = now + TIMEBASE_HZ / 20; /* look at idle_work every 50 ms */
        int ran = 0;
        for (int i = 0; i < MAX_PROCS; i++) {
            proc_t *p = &proc_table[i];
            if (p->state == SLEEPING && p->wake_time <= now)
                p->state = RUNNABLE;
            if (p->state == SLEEPING && p->wake_time < next_wake)
                next_wake = p->wake_time;
            if (p->state != RUNNABLE)
                continue;
            p->state = RUNNING;
            running = p;
            swtch(&scheduler_ctx, &p->ctx);
            running = NULL;
            ran = 1;
            if (p->state == ZOMBIE)
                free_proc(p);
        }
        idle_work();
        if (!ran)
            idle_until(next_wake);
    }
}
