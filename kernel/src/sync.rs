//! Kernel-global storage cells and the interrupt guard.
//!
//! Invariant: the kernel runs on one hart and keeps S-mode interrupts off (`sstatus.SIE = 0`)
//! whenever it executes, so a cell's contents are only ever touched by one flow of control at a
//! time. Callers never keep a reference obtained from a cell across a context switch.

use core::arch::asm;
use core::cell::UnsafeCell;

/// A single-field cell over `UnsafeCell`, used for the statics the inspector reads
/// (`alloc_table`, `alloc_tracker`, …). `#[repr(transparent)]`: the debugger sees through it.
#[repr(transparent)]
pub struct TrackerCell<T>(UnsafeCell<T>);

// SAFETY: single hart, interrupts off while the kernel runs (module invariant): no concurrent access.
unsafe impl<T> Sync for TrackerCell<T> {}

impl<T> TrackerCell<T> {
    pub const fn new(v: T) -> Self {
        TrackerCell(UnsafeCell::new(v))
    }
    /// Raw pointer to the contents; dereferencing it is subject to the module invariant.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Kernel-private global state with the same access rule as [`TrackerCell`].
pub type KCell<T> = TrackerCell<T>;

const SSTATUS_SIE: usize = 1 << 1;

/// Turns S-mode interrupts off for its lifetime and restores the previous state on drop.
/// The kernel normally already runs with them off; the guard makes the requirement explicit
/// where the tracker's tables change.
pub struct IrqGuard {
    was_on: bool,
}

impl IrqGuard {
    pub fn new() -> Self {
        let old: usize;
        // SAFETY: clearing sstatus.SIE only masks interrupts; no memory is touched.
        unsafe { asm!("csrrc {0}, sstatus, {1}", out(reg) old, in(reg) SSTATUS_SIE) };
        IrqGuard {
            was_on: old & SSTATUS_SIE != 0,
        }
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        if self.was_on {
            // SAFETY: restores the interrupt-enable state saved by `new`.
            unsafe { asm!("csrs sstatus, {0}", in(reg) SSTATUS_SIE) };
        }
    }
}
