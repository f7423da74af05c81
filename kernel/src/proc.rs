//! Processes and the scheduler: the process table (and its exported mirror `proc_table`),
//! spawning a program from the archive into a fresh address space, round-robin scheduling,
//! sleep/wait/exit, and `free_proc`, which gives back everything a dead process owned.
//!
//! Invariants: a slot is free iff `pid == 0`; a process's pages (kernel stack, trapframe, page
//! tables, image, user stack, heap) are all tracked with owner = its pid; `free_proc` runs on
//! the scheduler's stack (never on the dying process's kernel stack) right after the process
//! turned Zombie, and leaves no tracker entry owned by its pid. The slot of a zombie stays until
//! its parent reaps it (or at once if it has no parent). PIDs count up from 1, skip 0 (the
//! kernel) and `NO_PID`, and after a wrap never name a process still in the table. The console
//! always gets a shell: if starting one fails, the scheduler retries until it succeeds.

use crate::hart::{self, MAX_HARTS};
use crate::mm::tracker::{dump_allocs_for_pid, free_all_tracked_for_pid};
use crate::mm::{self, vm, AllocError};
use crate::sync::{KCell, SpinLock, SpinLockGuard, TrackerCell};
use crate::sysabi::*;
use crate::trap::{self, TrapFrame, REG_A0, REG_A1, REG_SP};
use crate::{archive, println, timer};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};
use kcore::elf::{Elf, PF_R, PF_W, PF_X};
use kcore::pid::next_pid;
use tracker::abi::{Pid, ProcInfo, ProcState, NO_HART, PROC_NAME_LEN};

pub const MAX_PROCS: usize = 64;
const KSTACK_PAGES: u64 = 4;

/// Callee-saved registers of a kernel flow, saved by `swtch`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Context {
    ra: u64,
    sp: u64,
    s: [u64; 12],
}

impl Context {
    const ZERO: Context = Context {
        ra: 0,
        sp: 0,
        s: [0; 12],
    };
}

#[derive(Clone, Copy)]
struct Proc {
    pid: Pid,
    parent: Pid,
    state: ProcState,
    name: [u8; PROC_NAME_LEN],
    /// The program's name in the archive (`""` for an empty slot): the user site's program.
    program: &'static str,
    ctx: Context,
    /// Physical addresses (0 = not allocated) of the pieces `free_proc` tears down.
    tf: u64,
    kstack: u64,
    root: u64,
    image_pa: u64,
    image_pages: u64,
    stack_pa: u64,
    wake_at: u64,
    exit_code: i32,
    torn_down: bool,
    /// Hart running it (state Running), else `NO_HART`.
    hart: u32,
}

impl Proc {
    const EMPTY: Proc = Proc {
        pid: 0,
        parent: 0,
        state: ProcState::Unused,
        name: [0; PROC_NAME_LEN],
        program: "",
        ctx: Context::ZERO,
        tf: 0,
        kstack: 0,
        root: 0,
        image_pa: 0,
        image_pages: 0,
        stack_pa: 0,
        wake_at: 0,
        exit_code: 0,
        torn_down: false,
        hart: NO_HART,
    };
}

/// The process table and the scheduler's shared state, under `PROC_LOCK` (first in the lock
/// order). The lock is held across every `swtch` between a process and a scheduler: the flow
/// that switches away leaks its guard and the flow switched to takes it over (`sched`,
/// `scheduler`, `forkret`), so no other hart sees a process half switched.
struct ProcTable {
    procs: [Proc; MAX_PROCS],
    next_pid: Pid,
    init_pid: Pid,
    /// The console has no shell and no hart is starting one: the next scheduler to see the
    /// retry time come claims the start (clearing this) and retries.
    shell_wanted: bool,
    /// `time` CSR value before which no scheduler retries starting the shell.
    shell_retry_at: u64,
    /// Fault injection (`fail_shell_starts=N` on the kernel command line): this many more
    /// attempts to start the shell fail with ENOMEM before trying.
    shell_start_failures: u32,
}

static PROC_LOCK: SpinLock<ProcTable> = SpinLock::new(
    "proc",
    ProcTable {
        procs: [Proc::EMPTY; MAX_PROCS],
        next_pid: 1,
        init_pid: 0,
        shell_wanted: false,
        shell_retry_at: 0,
        shell_start_failures: 0,
    },
);

type Procs = SpinLockGuard<'static, ProcTable>;

/// The inspector reads this: the process table (pid, parent, state, name, hart) as a
/// best-effort view. Written under `PROC_LOCK`.
#[no_mangle]
#[used]
pub static proc_table: TrackerCell<[ProcInfo; MAX_PROCS]> =
    TrackerCell::new([ProcInfo::EMPTY; MAX_PROCS]);

/// What a hart's scheduler keeps: its saved context and the slot of the process it runs.
/// Hart-private: only the hart whose id indexes `HARTS` touches its record.
struct HartState {
    ctx: Context,
    current: Option<usize>,
}

static HARTS: [KCell<HartState>; MAX_HARTS] = [const {
    KCell::new(HartState {
        ctx: Context::ZERO,
        current: None,
    })
}; MAX_HARTS];

/// This hart's record (see `HartState`: hart-private).
fn this_hart() -> *mut HartState {
    HARTS[hart::id()].get()
}

/// How long the scheduler waits between two attempts to start the shell.
const SHELL_RETRY_MS: u64 = 100;
/// The exit-report flag (`debug on|off`, `SYS_DEBUG`): whether `free_proc` prints the chapter's
/// report of what a dead process still owned.
static REPORT_EXITS: AtomicBool = AtomicBool::new(false);

global_asm!(
    r#"
    .section .text
    .globl swtch
swtch:
    sd ra, {ra}(a0)
    sd sp, {sp}(a0)
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11
    sd s\n, ({s}+\n*{xlen})(a0)
    .endr
    ld ra, {ra}(a1)
    ld sp, {sp}(a1)
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11
    ld s\n, ({s}+\n*{xlen})(a1)
    .endr
    ret
"#,
    ra = const core::mem::offset_of!(Context, ra),
    sp = const core::mem::offset_of!(Context, sp),
    s = const core::mem::offset_of!(Context, s),
    xlen = const trap::XLEN_BYTES,
);

extern "C" {
    /// Saves the callee-saved registers into `old` and resumes the flow saved in `new`.
    /// `tp` (the hart id) is not switched: it belongs to the hart, not to the flow.
    fn swtch(old: *mut Context, new: *const Context);
}

/// Switches from the flow saving into `old` to the one saved in `new`, handing `PROC_LOCK` over;
/// returns when some flow switches back here, with the lock held again.
fn switch(g: Procs, old: *mut Context, new: *const Context) -> Procs {
    g.leak();
    // SAFETY: both contexts live in static storage (the process table, `HARTS`); `new` was set
    // up by `build` or saved by an earlier `switch`; the lock stays held across.
    unsafe { swtch(old, new) };
    // SAFETY: the flow that switched here held PROC_LOCK and leaked its guard (above or in
    // `scheduler`).
    unsafe { PROC_LOCK.assume_locked() }
}

/// Slot of the process running on this hart. Panics in the scheduler.
fn current_slot() -> usize {
    // SAFETY: hart-private record; its scheduler (the only writer) is not running now.
    unsafe { (*this_hart()).current }.expect("proc: no current process")
}

/// Copies slot `i` into the exported `proc_table`.
fn export(t: &ProcTable, i: usize) {
    let p = &t.procs[i];
    let info = ProcInfo {
        pid: p.pid,
        parent: p.parent,
        state: p.state,
        name: p.name,
        hart: p.hart,
    };
    // SAFETY: PROC_LOCK is held (`t` is its data): the only writer.
    unsafe { (*proc_table.get())[i] = info };
}

/// Sets slot `i`'s state; `Running` means on this hart.
fn set_state(t: &mut ProcTable, i: usize, state: ProcState) {
    t.procs[i].state = state;
    t.procs[i].hart = if state == ProcState::Running {
        hart::id() as u32
    } else {
        NO_HART
    };
    export(t, i);
}

fn release_slot(t: &mut ProcTable, i: usize) {
    t.procs[i] = Proc::EMPTY;
    export(t, i);
}

fn find_slot(t: &ProcTable, pid: Pid) -> Option<usize> {
    (0..MAX_PROCS).find(|&i| pid != 0 && t.procs[i].pid == pid)
}

pub fn current_pid() -> Pid {
    PROC_LOCK.lock().procs[current_slot()].pid
}

/// The program process `pid` runs (zombies included), by its name in the archive; "" for no
/// such process.
pub fn program_of(pid: Pid) -> &'static str {
    let t = PROC_LOCK.lock();
    find_slot(&t, pid).map_or("", |i| t.procs[i].program)
}

/// The current process's program, by its name in the archive.
pub fn current_program() -> &'static str {
    PROC_LOCK.lock().procs[current_slot()].program
}

pub fn current_root() -> u64 {
    PROC_LOCK.lock().procs[current_slot()].root
}

/// (trapframe, page-table root, kernel stack top) of the current process.
pub fn current_user_context() -> (*mut TrapFrame, u64, u64) {
    let t = PROC_LOCK.lock();
    let p = &t.procs[current_slot()];
    (
        p.tf as *mut TrapFrame,
        p.root,
        p.kstack + KSTACK_PAGES * PAGE_SIZE,
    )
}

/// Whether exits are reported (the exit-report flag).
pub fn exit_report_on() -> bool {
    REPORT_EXITS.load(Ordering::Relaxed)
}

/// Turns the exit report on or off; returns the previous value.
pub fn set_exit_report(on: bool) -> bool {
    REPORT_EXITS.swap(on, Ordering::Relaxed)
}

fn alloc_err(e: AllocError) -> isize {
    match e {
        AllocError::OutOfMemory => ENOMEM,
        AllocError::TableFull => ETABLEFULL,
    }
}

/// Starts program `name` with the NUL-separated argument block `args`, as a child of `parent`
/// (0 = the kernel). On failure nothing stays allocated.
pub fn spawn(name: &str, args: &[u8], parent: Pid) -> Result<Pid, isize> {
    spawn_as(name, args, parent, false)
}

/// `spawn`; with `init`, the new process becomes the console's shell (`init_pid`) in the same
/// change that makes it runnable, so no hart can see it exit before it is known as the shell.
fn spawn_as(name: &str, args: &[u8], parent: Pid, init: bool) -> Result<Pid, isize> {
    let (program, image) = archive::find(name).ok_or(ENOENT)?;
    let elf = Elf::parse(image).map_err(|_| EINVAL)?;
    if args.len() > MAX_ARGS_LEN {
        return Err(EINVAL);
    }
    // Reserve a slot and a PID (state Unused: no scheduler runs it), then build without the lock.
    let (i, pid) = {
        let mut t = PROC_LOCK.lock();
        let i = (0..MAX_PROCS)
            .find(|&i| t.procs[i].pid == 0)
            .ok_or(EPROCLIM)?;
        let mut counter = t.next_pid;
        let pid =
            next_pid(&mut counter, MAX_PROCS, |p| find_slot(&t, p).is_some()).ok_or(EPROCLIM)?;
        t.next_pid = counter;
        let p = &mut t.procs[i];
        *p = Proc::EMPTY;
        p.pid = pid;
        p.parent = parent;
        p.program = program;
        let n = name.len().min(PROC_NAME_LEN - 1);
        p.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        export(&t, i);
        (i, pid)
    };
    let mut built = Proc::EMPTY;
    built.pid = pid;
    let r = build(&mut built, &elf, args);
    let mut t = PROC_LOCK.lock();
    let p = &mut t.procs[i];
    (p.tf, p.kstack, p.root, p.ctx) = (built.tf, built.kstack, built.root, built.ctx);
    (p.image_pa, p.image_pages, p.stack_pa) = (built.image_pa, built.image_pages, built.stack_pa);
    if let Err(e) = r {
        drop(t);
        free_proc(pid);
        release_slot(&mut PROC_LOCK.lock(), i);
        return Err(e);
    }
    set_state(&mut t, i, ProcState::Runnable);
    if init {
        t.init_pid = pid;
    }
    Ok(pid)
}

/// Allocates and fills `p`'s kernel stack, trapframe, address space, image and user stack
/// (tracked for `p.pid`); on failure `p` names what was allocated so far.
fn build(p: &mut Proc, elf: &Elf, args: &[u8]) -> Result<(), isize> {
    let pid = p.pid;
    p.kstack = mm::alloc_pages(KSTACK_PAGES, pid, "kstack").map_err(alloc_err)?;
    p.tf = mm::alloc_pages(1, pid, "trapframe").map_err(alloc_err)?;
    let root = vm::new_user_root(pid).map_err(alloc_err)?;
    p.root = root;

    // Image: one allocation spanning all PT_LOAD segments.
    let stack_base = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    let span = elf
        .span(USER_BASE, stack_base, PAGE_SIZE)
        .map_err(|_| EINVAL)?;
    let (lo, npages) = (span.lo, span.npages(PAGE_SIZE));
    let image = mm::alloc_pages(npages, pid, "user_image").map_err(alloc_err)?;
    p.image_pa = image;
    p.image_pages = npages;
    for s in elf.segments() {
        let dst = image + (s.vaddr - lo);
        // SAFETY: `dst..dst + data.len()` lies inside the fresh image allocation: the span
        // holds every segment's `[vaddr, vaddr + memsz)` and `data.len() <= memsz` (kcore::elf).
        unsafe { core::ptr::copy_nonoverlapping(s.data.as_ptr(), dst as *mut u8, s.data.len()) };
    }
    for k in 0..npages {
        let va = lo + k * PAGE_SIZE;
        let mut flags = pte_flags(elf.page_flags(va, PAGE_SIZE));
        if flags == 0 {
            flags = vm::PTE_R;
        }
        vm::map(root, va, image + k * PAGE_SIZE, flags, pid).map_err(alloc_err)?;
    }

    // User stack, with the argument block at its top.
    let stack = mm::alloc_pages(USER_STACK_PAGES, pid, "user_stack").map_err(alloc_err)?;
    p.stack_pa = stack;
    for k in 0..USER_STACK_PAGES {
        vm::map(
            root,
            stack_base + k * PAGE_SIZE,
            stack + k * PAGE_SIZE,
            vm::PTE_R | vm::PTE_W,
            pid,
        )
        .map_err(alloc_err)?;
    }
    let args_va = (USER_STACK_TOP - args.len() as u64) & !15;
    // SAFETY: the argument block fits in the top page of the fresh stack allocation (MAX_ARGS_LEN < a page).
    unsafe {
        core::ptr::copy_nonoverlapping(
            args.as_ptr(),
            (stack + (args_va - stack_base)) as *mut u8,
            args.len(),
        )
    };

    // SAFETY: `p.tf` is this process's fresh, zeroed trapframe page.
    let tf = unsafe { &mut *(p.tf as *mut TrapFrame) };
    tf.sepc = elf.entry;
    tf.regs[REG_SP] = args_va;
    tf.regs[REG_A0] = args_va;
    tf.regs[REG_A1] = args.len() as u64;
    p.ctx = Context::ZERO;
    p.ctx.ra = forkret as *const () as u64;
    p.ctx.sp = p.kstack + KSTACK_PAGES * PAGE_SIZE;
    Ok(())
}

/// The user-page permissions for a segment with ELF flags `seg` (writable implies readable).
fn pte_flags(seg: u32) -> u64 {
    let mut pte = 0;
    if seg & PF_R != 0 {
        pte |= vm::PTE_R;
    }
    if seg & PF_W != 0 {
        pte |= vm::PTE_W | vm::PTE_R;
    }
    if seg & PF_X != 0 {
        pte |= vm::PTE_X;
    }
    pte
}

/// First kernel flow of a new process, switched to by a scheduler holding `PROC_LOCK`:
/// releases it, then straight to user mode.
extern "C" fn forkret() -> ! {
    // SAFETY: the scheduler that switched here leaked its guard of PROC_LOCK (`switch`).
    drop(unsafe { PROC_LOCK.assume_locked() });
    trap::return_to_user()
}

/// Gives back everything process `pid` owned: what the process code knows about (user image,
/// user stack, page tables, trapframe, kernel stack), then whatever is still tracked for it
/// (its leaks), with the chapter's report when the exit-report flag is on. Must not run on the
/// process's own kernel stack or page table, nor with `PROC_LOCK` held; no hart runs the
/// process (it is a zombie, or was never runnable), and no hart has a TLB entry of its address
/// space (every hart flushes when it leaves a process: docs/architecture.md).
#[no_mangle]
#[inline(never)]
pub fn free_proc(pid: Pid) {
    let report = exit_report_on();
    let p = {
        let t = PROC_LOCK.lock();
        t.procs[find_slot(&t, pid).expect("free_proc: no such pid")]
    };
    if p.image_pa != 0 {
        mm::free_pages(p.image_pa, p.image_pages).expect("free_proc: image not tracked");
    }
    if p.stack_pa != 0 {
        mm::free_pages(p.stack_pa, USER_STACK_PAGES).expect("free_proc: user stack not tracked");
    }
    if p.root != 0 {
        vm::free_user_tables(p.root);
    }
    if p.tf != 0 {
        mm::free_page(p.tf).expect("free_proc: trapframe not tracked");
    }
    if p.kstack != 0 {
        mm::free_pages(p.kstack, KSTACK_PAGES).expect("free_proc: kernel stack not tracked");
    }
    {
        let mut t = PROC_LOCK.lock();
        let i = find_slot(&t, pid).expect("free_proc: slot vanished");
        let s = &mut t.procs[i];
        (s.image_pa, s.stack_pa, s.root, s.tf, s.kstack) = (0, 0, 0, 0, 0);
    }
    if report {
        println!("[free_proc] Allocations still owned by pid {pid}:");
    }
    free_all_tracked_for_pid(pid, report);
    dump_allocs_for_pid(pid, report);
}

/// Switches from the current process to this hart's scheduler, with `PROC_LOCK` held (`g`);
/// returns, with the lock held again, when some hart's scheduler picks the process again.
fn sched(mut g: Procs) -> Procs {
    let i = current_slot();
    let ctx: *mut Context = &mut g.procs[i].ctx;
    // SAFETY: hart-private record (this hart's).
    let hctx = unsafe { &raw mut (*this_hart()).ctx };
    switch(g, ctx, hctx)
}

/// Gives up the CPU, staying runnable.
pub fn yield_now() {
    let mut g = PROC_LOCK.lock();
    set_state(&mut g, current_slot(), ProcState::Runnable);
    drop(sched(g));
}

/// Sleeps until `time` CSR reaches `until`.
pub fn sleep_until(until: u64) {
    let mut g = PROC_LOCK.lock();
    while timer::now() < until {
        let i = current_slot();
        g.procs[i].wake_at = until;
        set_state(&mut g, i, ProcState::Sleeping);
        g = sched(g);
    }
}

/// Ends the current process with `code`. Its resources are freed by the scheduler of the hart
/// it ran on, which then wakes a waiting parent.
pub fn exit_current(code: i32) -> ! {
    let mut g = PROC_LOCK.lock();
    let i = current_slot();
    let pid = g.procs[i].pid;
    g.procs[i].exit_code = code;
    for j in 0..MAX_PROCS {
        let c = &mut g.procs[j];
        if c.pid != 0 && c.parent == pid {
            c.parent = 0;
            let reap = c.state == ProcState::Zombie && c.torn_down;
            export(&g, j);
            if reap {
                release_slot(&mut g, j);
            }
        }
    }
    set_state(&mut g, i, ProcState::Zombie);
    drop(sched(g));
    unreachable!("proc: zombie {pid} scheduled");
}

/// Reaps a zombie child (`target`: that one; None: any). Ok((0, 0)) with `nohang` if
/// children exist but none has exited; Err(ECHILD) if there is no such child.
pub fn wait(target: Option<Pid>, nohang: bool) -> Result<(Pid, i32), isize> {
    let mut g = PROC_LOCK.lock();
    loop {
        let me = g.procs[current_slot()].pid;
        let mut found = false;
        for j in 0..MAX_PROCS {
            let c = g.procs[j];
            if c.pid == 0 || c.parent != me || target.is_some_and(|t| c.pid != t) {
                continue;
            }
            found = true;
            if c.state == ProcState::Zombie && c.torn_down {
                release_slot(&mut g, j);
                return Ok((c.pid, c.exit_code));
            }
        }
        if !found {
            return Err(ECHILD);
        }
        if nohang {
            return Ok((0, 0));
        }
        set_state(&mut g, current_slot(), ProcState::Waiting);
        g = sched(g);
    }
}

/// Calls `f` with each live process's (pid, parent, state, name, hart), under `PROC_LOCK`
/// (`f` must not call into this module).
pub fn for_each_proc(mut f: impl FnMut(Pid, Pid, ProcState, [u8; PROC_NAME_LEN], u32)) {
    let t = PROC_LOCK.lock();
    for p in t.procs.iter().filter(|p| p.pid != 0) {
        f(p.pid, p.parent, p.state, p.name, p.hart);
    }
}

/// Starts the first process (the shell). If that fails (no memory, table full, process table
/// full), the console says so once and the schedulers retry until one succeeds.
pub fn spawn_init() {
    PROC_LOCK.lock().shell_wanted = false;
    start_shell(false);
}

/// Makes the next `n` attempts to start the shell fail as if out of memory (for tests).
pub fn inject_shell_start_failures(n: u32) {
    PROC_LOCK.lock().shell_start_failures = n;
    if n > 0 {
        println!("[proc] fault injection: the next {n} attempt(s) to start the shell fail");
    }
}

/// Spawns the shell, unless an injected failure is due.
fn spawn_shell() -> Result<Pid, isize> {
    {
        let mut t = PROC_LOCK.lock();
        if t.shell_start_failures > 0 {
            t.shell_start_failures -= 1;
            return Err(ENOMEM);
        }
    }
    spawn_as("shell", b"shell\0", 0, true)
}

/// Tries to start the shell; the caller has claimed the start (`shell_wanted` false, so no other
/// hart tries at the same time). `retry` says whether an earlier attempt failed (then success
/// is announced, and a failure is not reported again).
fn start_shell(retry: bool) {
    match spawn_shell() {
        Ok(pid) => {
            if retry {
                println!("[proc] started the shell (pid {pid})");
            }
        }
        Err(e) => {
            if !retry {
                println!(
                    "[proc] cannot start the shell: {}; retrying every {SHELL_RETRY_MS} ms",
                    err_name(e)
                );
            }
            let mut t = PROC_LOCK.lock();
            t.shell_retry_at = timer::now() + timer::ms_to_ticks(SHELL_RETRY_MS);
            t.shell_wanted = true;
        }
    }
}

/// Retries starting the shell when the console has none and the retry time has come.
fn retry_shell(now: u64) {
    let claimed = {
        let mut t = PROC_LOCK.lock();
        let due = t.shell_wanted && now >= t.shell_retry_at;
        if due {
            t.shell_wanted = false;
        }
        due
    };
    if claimed {
        start_shell(true);
    }
}

fn wake_sleepers(t: &mut ProcTable, now: u64) {
    for i in 0..MAX_PROCS {
        let p = &t.procs[i];
        if p.state == ProcState::Sleeping && p.wake_at <= now {
            set_state(t, i, ProcState::Runnable);
        }
    }
}

/// Tears down slot `i`'s process, a zombie that this hart ran last, then marks it torn down,
/// wakes a waiting parent, releases the slot if nobody will reap it, and starts a new shell
/// if it was the shell. Runs on the scheduler's stack with the kernel's table.
fn reap_zombie(i: usize, pid: Pid, code: i32) {
    free_proc(pid);
    let mut t = PROC_LOCK.lock();
    t.procs[i].torn_down = true;
    let parent = t.procs[i].parent;
    if let Some(pi) = find_slot(&t, parent) {
        if t.procs[pi].state == ProcState::Waiting {
            set_state(&mut t, pi, ProcState::Runnable);
        }
    }
    if parent == 0 {
        release_slot(&mut t, i);
    }
    let was_shell = pid == t.init_pid;
    drop(t);
    if was_shell {
        println!("[proc] the shell (pid {pid}) exited with {code}; starting a new one");
        spawn_init();
    }
}

/// Round robin over the process table, forever, on every hart: each runs whatever process is
/// runnable, whichever hart ran it before. Runs on the hart's own stack with the kernel's table.
pub fn scheduler() -> ! {
    let mut last = MAX_PROCS - 1;
    loop {
        let now = timer::now();
        retry_shell(now);
        let mut g = PROC_LOCK.lock();
        wake_sleepers(&mut g, now);
        let next = (1..=MAX_PROCS)
            .map(|k| (last + k) % MAX_PROCS)
            .find(|&i| g.procs[i].state == ProcState::Runnable);
        let Some(i) = next else {
            drop(g);
            if !timer::pending() {
                // SAFETY: wfi only waits; it returns on the (enabled, not globally taken) timer interrupt.
                unsafe { core::arch::asm!("wfi") };
            }
            if timer::pending() {
                timer::tick();
            }
            continue;
        };
        last = i;
        set_state(&mut g, i, ProcState::Running);
        let hs = this_hart();
        // SAFETY: hart-private record (this hart's).
        unsafe { (*hs).current = Some(i) };
        let ctx: *const Context = &g.procs[i].ctx;
        // SAFETY: as above.
        let g = switch(g, unsafe { &raw mut (*hs).ctx }, ctx);
        // SAFETY: as above.
        unsafe { (*hs).current = None };
        let p = g.procs[i];
        drop(g);
        // Leave the process's address space, flushing this hart's TLB of it.
        vm::activate(vm::kernel_root());
        if p.state == ProcState::Zombie && !p.torn_down {
            reap_zombie(i, p.pid, p.exit_code);
        }
    }
}

/// The cost counters of the process table's lock (`SYS_LOCKSTAT`).
pub fn lock_report() -> crate::sysabi::LockStat {
    PROC_LOCK.report()
}
