//! Harts: which hart the code runs on (`tp`), starting the secondary harts through SBI HSM,
//! and the count of harts online.
//!
//! Invariants: in S-mode, `tp` holds the hart id of the hart executing (set at entry by
//! `_start`/`_secondary_start`, restored from the trapframe by `uservec`, never used by
//! compiled Rust code, which has no thread-local storage); hart ids are below `MAX_HARTS`,
//! and hart `h` owns the 64 KiB stack ending at `__hart_stacks + (h + 1) * STACK_SIZE`, which
//! carries its boot and then its scheduler. A flow of control that migrates (a process
//! resumed on another hart) reads `tp` afresh: it must never keep a hart id across a context
//! switch.

use crate::{println, sbi, timer};
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Most harts the kernel runs on (QEMU virt's hart ids are 0..N-1).
pub const MAX_HARTS: usize = 8;
/// Bytes of each hart's boot/scheduler stack (`kernel/linker.ld` reserves `MAX_HARTS` of them).
pub const STACK_SIZE: usize = 1 << STACK_SHIFT;
pub const STACK_SHIFT: usize = 16;
/// How long the boot hart waits for the harts it started to check in.
const ONLINE_WAIT_MS: u64 = 1000;

/// Harts that reached their scheduler setup (`online`).
static ONLINE: AtomicUsize = AtomicUsize::new(0);

/// Taken (swapped to 1) by the hart that boots the kernel, at `_start`, before the BSS is
/// cleared: in `.data`, so that clearing cannot hand it out again.
#[no_mangle]
#[link_section = ".data"]
pub static BOOT_TICKET: AtomicU32 = AtomicU32::new(0);

/// Harts that came in at `_start` after the boot hart took the ticket ([`late_entry`]), and
/// whether they may go on (set by [`start_secondaries`]). In `.data` like the ticket: a late
/// hart may count itself before the boot hart clears the BSS.
#[link_section = ".data"]
static LATE: AtomicUsize = AtomicUsize::new(0);
#[link_section = ".data"]
static DOOR_OPEN: AtomicU32 = AtomicU32::new(0);

/// A hart that firmware sent to the kernel's entry (`_start`) rather than waiting for
/// `hart_start` (OpenSBI has done so to a hart slow to reach its wait: it then booted a second
/// kernel and cleared the BSS under the first). It touches nothing the boot hart sets up, waits
/// until the boot hart starts the secondaries, and then runs as one. `sp` and `tp` are its own
/// (set by `_start`).
#[no_mangle]
extern "C" fn late_entry(hartid: usize) -> ! {
    LATE.fetch_add(1, Ordering::AcqRel);
    while DOOR_OPEN.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    crate::secondary_main(hartid)
}

/// The id of the hart executing this (its `tp`).
#[inline(always)]
pub fn id() -> usize {
    let id: usize;
    // SAFETY: reads a register (module invariant: `tp` = hart id in S-mode).
    unsafe { asm!("mv {0}, tp", out(reg) id) };
    id
}

/// Counts this hart as online (each hart once, after its trap and timer set-up).
pub fn online() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// Harts online so far.
pub fn count() -> usize {
    ONLINE.load(Ordering::Acquire)
}

extern "C" {
    fn _secondary_start();
    static __hart_stacks: u8;
}

/// Top of hart `h`'s stack.
fn stack_top(h: usize) -> usize {
    // Only the address of the linker symbol is taken.
    core::ptr::addr_of!(__hart_stacks) as usize + (h + 1) * STACK_SIZE
}

/// Starts every other hart QEMU has (SBI HSM `hart_start` at `_secondary_start`, which calls
/// `secondary_main`), waits until they are online (at most `ONLINE_WAIT_MS`), and prints
/// `smp: N harts online`. Call on the boot hart once the kernel's table and the tracker exist.
pub fn start_secondaries() {
    let me = id();
    let mut started = 0;
    // Harts already in the kernel (see `late_entry`) go on; `hart_start` refuses them.
    DOOR_OPEN.store(1, Ordering::Release);
    for h in (0..MAX_HARTS).filter(|&h| h != me) {
        if sbi::hart_start(h, _secondary_start as *const () as usize, stack_top(h)).is_ok() {
            started += 1;
        }
    }
    started += LATE.load(Ordering::Acquire);
    let deadline = timer::now() + timer::ms_to_ticks(ONLINE_WAIT_MS);
    while count() < started + 1 && timer::now() < deadline {
        core::hint::spin_loop();
    }
    println!("smp: {} harts online", count());
}

core::arch::global_asm!(
    r#"
    .section .text
    .globl _secondary_start
_secondary_start:
    mv sp, a1
    mv tp, a0
    call secondary_main
1:
    wfi
    j 1b
"#
);
