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

use crate::mm::tracker::{dump_allocs_for_pid, free_all_tracked_for_pid};
use crate::mm::{self, vm, AllocError};
use crate::sync::{KCell, TrackerCell};
use crate::sysabi::*;
use crate::trap::{self, TrapFrame, REG_A0, REG_A1, REG_SP};
use crate::{archive, println, timer};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, Ordering};
use kcore::elf::{Elf, PF_R, PF_W, PF_X};
use kcore::pid::next_pid;
use tracker::abi::{Pid, ProcInfo, ProcState, PROC_NAME_LEN};

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
    };
}

static PROCS: KCell<[Proc; MAX_PROCS]> = KCell::new([Proc::EMPTY; MAX_PROCS]);

/// The inspector reads this: the process table (pid, parent, state, name) as a best-effort view.
#[no_mangle]
#[used]
pub static proc_table: TrackerCell<[ProcInfo; MAX_PROCS]> =
    TrackerCell::new([ProcInfo::EMPTY; MAX_PROCS]);

/// Slot of the process running on the hart; None while the scheduler runs.
static CURRENT: KCell<Option<usize>> = KCell::new(None);
static SCHED_CTX: KCell<Context> = KCell::new(Context::ZERO);
static NEXT_PID: KCell<Pid> = KCell::new(1);
static INIT_PID: KCell<Pid> = KCell::new(0);
/// The console has no shell: `start_shell` failed (or has not run yet) and the scheduler
/// retries every `SHELL_RETRY_MS` until it succeeds.
static SHELL_WANTED: KCell<bool> = KCell::new(false);
/// `time` CSR value before which the scheduler does not retry starting the shell.
static SHELL_RETRY_AT: KCell<u64> = KCell::new(0);
/// How long the scheduler waits between two attempts to start the shell.
const SHELL_RETRY_MS: u64 = 100;
/// Fault injection (`fail_shell_starts=N` on the kernel command line): this many more
/// attempts to start the shell fail with ENOMEM before trying.
static SHELL_START_FAILURES: KCell<u32> = KCell::new(0);
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
    fn swtch(old: *mut Context, new: *const Context);
}

/// The process in slot `i`. The reference must not be held across a context switch.
fn slot(i: usize) -> &'static mut Proc {
    // SAFETY: sync invariant (one hart, interrupts off); callers keep the borrow short and
    // never across `swtch`, so no two live references to one slot overlap in time.
    unsafe { &mut (*PROCS.get())[i] }
}

fn current_slot() -> usize {
    // SAFETY: sync invariant.
    unsafe { *CURRENT.get() }.expect("proc: no current process")
}

/// Copies slot `i` into the exported `proc_table`.
fn export(i: usize) {
    let p = slot(i);
    let info = ProcInfo {
        pid: p.pid,
        parent: p.parent,
        state: p.state,
        name: p.name,
    };
    // SAFETY: sync invariant; the inspector only reads this memory while the hart is halted.
    unsafe { (*proc_table.get())[i] = info };
}

fn set_state(i: usize, state: ProcState) {
    slot(i).state = state;
    export(i);
}

fn release_slot(i: usize) {
    *slot(i) = Proc::EMPTY;
    export(i);
}

fn find_slot(pid: Pid) -> Option<usize> {
    (0..MAX_PROCS).find(|&i| pid != 0 && slot(i).pid == pid)
}

pub fn current_pid() -> Pid {
    slot(current_slot()).pid
}

/// The program process `pid` runs (zombies included), by its name in the archive; "" for no
/// such process.
pub fn program_of(pid: Pid) -> &'static str {
    find_slot(pid).map_or("", |i| slot(i).program)
}

/// The current process's program, by its name in the archive.
pub fn current_program() -> &'static str {
    slot(current_slot()).program
}

pub fn current_root() -> u64 {
    slot(current_slot()).root
}

/// (trapframe, page-table root, kernel stack top) of the current process.
pub fn current_user_context() -> (*mut TrapFrame, u64, u64) {
    let p = slot(current_slot());
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
    let (program, image) = archive::find(name).ok_or(ENOENT)?;
    let elf = Elf::parse(image).map_err(|_| EINVAL)?;
    if args.len() > MAX_ARGS_LEN {
        return Err(EINVAL);
    }
    let i = (0..MAX_PROCS).find(|&i| slot(i).pid == 0).ok_or(EPROCLIM)?;
    // SAFETY: sync invariant.
    let counter = unsafe { &mut *NEXT_PID.get() };
    let pid = next_pid(counter, MAX_PROCS, |p| find_slot(p).is_some()).ok_or(EPROCLIM)?;
    let p = slot(i);
    *p = Proc::EMPTY;
    p.pid = pid;
    p.parent = parent;
    p.program = program;
    let n = name.len().min(PROC_NAME_LEN - 1);
    p.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    if let Err(e) = build(i, &elf, args) {
        free_proc(pid);
        release_slot(i);
        return Err(e);
    }
    set_state(i, ProcState::Runnable);
    Ok(pid)
}

/// Allocates and fills slot `i`'s kernel stack, trapframe, address space, image and user stack.
fn build(i: usize, elf: &Elf, args: &[u8]) -> Result<(), isize> {
    let pid = slot(i).pid;
    slot(i).kstack = mm::alloc_pages(KSTACK_PAGES, pid, "kstack").map_err(alloc_err)?;
    slot(i).tf = mm::alloc_pages(1, pid, "trapframe").map_err(alloc_err)?;
    let root = vm::new_user_root(pid).map_err(alloc_err)?;
    slot(i).root = root;

    // Image: one allocation spanning all PT_LOAD segments.
    let stack_base = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
    let span = elf
        .span(USER_BASE, stack_base, PAGE_SIZE)
        .map_err(|_| EINVAL)?;
    let (lo, npages) = (span.lo, span.npages(PAGE_SIZE));
    let image = mm::alloc_pages(npages, pid, "user_image").map_err(alloc_err)?;
    slot(i).image_pa = image;
    slot(i).image_pages = npages;
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
    slot(i).stack_pa = stack;
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

    let p = slot(i);
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

/// First kernel flow of a new process: straight to user mode.
extern "C" fn forkret() -> ! {
    trap::return_to_user()
}

/// Gives back everything process `pid` owned: what the process code knows about (user image,
/// user stack, page tables, trapframe, kernel stack), then whatever is still tracked for it
/// (its leaks), with the chapter's report when the exit-report flag is on. Must not run on the
/// process's own kernel stack or page table.
#[no_mangle]
#[inline(never)]
pub fn free_proc(pid: Pid) {
    let report = exit_report_on();
    let i = find_slot(pid).expect("free_proc: no such pid");
    let p = *slot(i);
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
    let s = slot(i);
    (s.image_pa, s.stack_pa, s.root, s.tf, s.kstack) = (0, 0, 0, 0, 0);
    if report {
        println!("[free_proc] Allocations still owned by pid {pid}:");
    }
    free_all_tracked_for_pid(pid, report);
    dump_allocs_for_pid(pid, report);
}

/// Switches from the current process to the scheduler; returns when it is picked again.
fn sched() {
    let i = current_slot();
    let ctx = &raw mut slot(i).ctx;
    // SAFETY: both contexts are valid for the lifetime of the kernel (static storage); the
    // scheduler resumes this flow only through the same context.
    unsafe { swtch(ctx, SCHED_CTX.get()) };
}

/// Gives up the CPU, staying runnable.
pub fn yield_now() {
    set_state(current_slot(), ProcState::Runnable);
    sched();
}

/// Sleeps until `time` CSR reaches `until`.
pub fn sleep_until(until: u64) {
    while timer::now() < until {
        let i = current_slot();
        slot(i).wake_at = until;
        set_state(i, ProcState::Sleeping);
        sched();
    }
}

/// Ends the current process with `code`. Its resources are freed by the scheduler.
pub fn exit_current(code: i32) -> ! {
    let i = current_slot();
    let pid = slot(i).pid;
    slot(i).exit_code = code;
    for j in 0..MAX_PROCS {
        let c = slot(j);
        if c.pid != 0 && c.parent == pid {
            c.parent = 0;
            export(j);
            if c.state == ProcState::Zombie && c.torn_down {
                release_slot(j);
            }
        }
    }
    let parent = slot(i).parent;
    if let Some(pi) = find_slot(parent) {
        if slot(pi).state == ProcState::Waiting {
            set_state(pi, ProcState::Runnable);
        }
    }
    set_state(i, ProcState::Zombie);
    sched();
    unreachable!("proc: zombie {pid} scheduled");
}

/// Reaps a zombie child (`target`: that one; None: any). Ok((0, 0)) with `nohang` if
/// children exist but none has exited; Err(ECHILD) if there is no such child.
pub fn wait(target: Option<Pid>, nohang: bool) -> Result<(Pid, i32), isize> {
    loop {
        let me = current_pid();
        let mut found = false;
        for j in 0..MAX_PROCS {
            let c = *slot(j);
            if c.pid == 0 || c.parent != me || target.is_some_and(|t| c.pid != t) {
                continue;
            }
            found = true;
            if c.state == ProcState::Zombie && c.torn_down {
                release_slot(j);
                return Ok((c.pid, c.exit_code));
            }
        }
        if !found {
            return Err(ECHILD);
        }
        if nohang {
            return Ok((0, 0));
        }
        set_state(current_slot(), ProcState::Waiting);
        sched();
    }
}

/// Calls `f` with each live process's (pid, parent, state, name).
pub fn for_each_proc(mut f: impl FnMut(Pid, Pid, ProcState, [u8; PROC_NAME_LEN])) {
    for i in 0..MAX_PROCS {
        let p = *slot(i);
        if p.pid != 0 {
            f(p.pid, p.parent, p.state, p.name);
        }
    }
}

/// Starts the first process (the shell). If that fails (no memory, table full, process table
/// full), the console says so once and the scheduler retries until it succeeds.
pub fn spawn_init() {
    // SAFETY: sync invariant.
    unsafe { *SHELL_WANTED.get() = true };
    start_shell(false);
}

/// Makes the next `n` attempts to start the shell fail as if out of memory (for tests).
pub fn inject_shell_start_failures(n: u32) {
    // SAFETY: sync invariant.
    unsafe { *SHELL_START_FAILURES.get() = n };
    if n > 0 {
        println!("[proc] fault injection: the next {n} attempt(s) to start the shell fail");
    }
}

/// Spawns the shell, unless an injected failure is due.
fn spawn_shell() -> Result<Pid, isize> {
    // SAFETY: sync invariant.
    let injected = unsafe { &mut *SHELL_START_FAILURES.get() };
    if *injected > 0 {
        *injected -= 1;
        return Err(ENOMEM);
    }
    spawn("shell", b"shell\0", 0)
}

/// Tries to start the shell if the console has none; `retry` says whether an earlier attempt
/// failed (then success is announced, and a failure is not reported again).
fn start_shell(retry: bool) {
    // SAFETY: sync invariant (this and the statics below).
    if !unsafe { *SHELL_WANTED.get() } {
        return;
    }
    match spawn_shell() {
        Ok(pid) => {
            // SAFETY: sync invariant.
            unsafe {
                *INIT_PID.get() = pid;
                *SHELL_WANTED.get() = false;
            }
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
            // SAFETY: sync invariant.
            unsafe { *SHELL_RETRY_AT.get() = timer::now() + timer::ms_to_ticks(SHELL_RETRY_MS) };
        }
    }
}

/// Retries starting the shell when the console has none and the retry time has come.
fn retry_shell(now: u64) {
    // SAFETY: sync invariant.
    if unsafe { *SHELL_WANTED.get() && now >= *SHELL_RETRY_AT.get() } {
        start_shell(true);
    }
}

fn wake_sleepers(now: u64) {
    for i in 0..MAX_PROCS {
        let p = slot(i);
        if p.state == ProcState::Sleeping && p.wake_at <= now {
            set_state(i, ProcState::Runnable);
        }
    }
}

/// Round robin over the process table, forever. Runs on the boot stack with the kernel's table.
pub fn scheduler() -> ! {
    let mut last = MAX_PROCS - 1;
    loop {
        let now = timer::now();
        retry_shell(now);
        wake_sleepers(now);
        let next = (1..=MAX_PROCS)
            .map(|k| (last + k) % MAX_PROCS)
            .find(|&i| slot(i).state == ProcState::Runnable);
        let Some(i) = next else {
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
        set_state(i, ProcState::Running);
        // SAFETY: sync invariant.
        unsafe { *CURRENT.get() = Some(i) };
        let ctx = &raw const slot(i).ctx;
        // SAFETY: `ctx` was set up by `build` or saved by `sched`; SCHED_CTX is static.
        unsafe { swtch(SCHED_CTX.get(), ctx) };
        // SAFETY: sync invariant.
        unsafe { *CURRENT.get() = None };
        vm::activate(vm::kernel_root());
        let p = *slot(i);
        if p.state == ProcState::Zombie && !p.torn_down {
            free_proc(p.pid);
            slot(i).torn_down = true;
            if p.parent == 0 {
                release_slot(i);
            }
            // SAFETY: sync invariant.
            if p.pid == unsafe { *INIT_PID.get() } {
                println!(
                    "[proc] the shell (pid {}) exited with {}; starting a new one",
                    p.pid, p.exit_code
                );
                spawn_init();
            }
        }
    }
}
