/* Processes as kernel contexts: each runs a C function on its own stack, cooperatively
 * (sleep_ms and yield switch), until it returns or calls proc_exit. No user mode. */
#pragma once
#include "types.h"

#define MAX_PROCS 16

/* The inspector maps these enumerators by name (any case). */
enum proc_state { UNUSED, RUNNABLE, RUNNING, SLEEPING, ZOMBIE };

/* Callee-saved registers, saved by swtch (start.S). */
struct context {
    uint64_t ra, sp, s[12];
};

/* One process. `proc_table` is optional for Leakscope: when the fields `pid`, `parent`,
 * `state` and `name` are there, the inspector shows names and states (docs/your-kernel.md). */
typedef struct {
    pid_t pid; /* 0 = unused slot */
    pid_t parent;
    enum proc_state state;
    char name[16];
    uint64_t wake_time; /* SLEEPING until the `time` CSR reaches this */
    void (*entry)(void);
    struct context ctx;
} proc_t;

extern proc_t proc_table[MAX_PROCS];

/* Exit reports (the chapter's debug_flag) on: free_proc prints the chapter's lines. */
#define REPORT_EXITS 1

/* A new RUNNABLE process running `entry`; NULL when the table is full. */
proc_t *proc_create(const char *name, void (*entry)(void));
/* The running process (NULL in the scheduler). */
proc_t *current(void);
/* Lets the other processes run. */
void yield(void);
/* Sleeps at least `ms` milliseconds. */
void sleep_ms(unsigned ms);
/* Ends the running process; the scheduler then calls free_proc. */
void proc_exit(void) __attribute__((noreturn));
/* Frees what a ZOMBIE process still owns (its leaks) and its slot. */
void free_proc(proc_t *proc);
/* Live (not UNUSED) processes. */
int live_procs(void);
/* Runs the processes round robin; calls `idle_work` between rounds. Never returns. */
void scheduler(void (*idle_work)(void)) __attribute__((noreturn));
