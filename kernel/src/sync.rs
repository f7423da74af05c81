//! Kernel-global storage cells, the interrupt guard, and the kernel's spin lock.
//!
//! Invariants: the kernel keeps S-mode interrupts off (`sstatus.SIE = 0`) whenever it executes,
//! so nothing interrupts a flow of control on its own hart; several harts run kernel code at
//! once, so every shared cell is either written only before the other harts start (boot), or
//! touched only while holding the [`SpinLock`] its doc comment names. Callers never keep a
//! reference obtained from a cell across a context switch or past the release of its lock.
//!
//! Lock order (a flow holding one may take those to its right, never the reverse):
//! `proc::PROC_LOCK` → `mm::tracker::TRACKER_LOCK` → `mm::PAGES` → `console::CONSOLE`.

use crate::hart;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kcore::sysabi::{LockStat, LOCK_NAME_LEN};
use tracker::lock;

/// A single-field cell over `UnsafeCell`, used for the statics the inspector reads
/// (`alloc_table`, `alloc_tracker`, …). `#[repr(transparent)]`: the debugger sees through it.
#[repr(transparent)]
pub struct TrackerCell<T>(UnsafeCell<T>);

// SAFETY: every cell is guarded by a lock or written before the other harts start (module
// invariant): no two harts access one at the same time.
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
/// where shared state changes.
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

/// No hart holds the lock (`SpinLock::holder`).
const NO_HOLDER: usize = usize::MAX;

/// A spin lock that also keeps interrupts off on the holding hart while it is held, counts the
/// `time` CSR ticks its acquirers waited (reported with the inner lock's counters by
/// [`SpinLock::report`], for `SYS_LOCKSTAT`), and panics (instead of hanging) when a hart takes a
/// lock it already holds.
pub struct SpinLock<T> {
    name: &'static str,
    inner: lock::SpinLock<T>,
    /// Hart id of the holder, `NO_HOLDER` when free. Written only by the holder.
    holder: AtomicUsize,
    wait_ticks: AtomicU64,
}

/// Exclusive access to a [`SpinLock`]'s data, interrupts off; released on drop.
pub struct SpinLockGuard<'a, T> {
    // Field order is drop order: the lock is released before interrupts come back.
    guard: lock::SpinGuard<'a, T>,
    holder: &'a AtomicUsize,
    _irq: IrqGuard,
}

impl<T> SpinLock<T> {
    pub const fn new(name: &'static str, data: T) -> Self {
        SpinLock {
            name,
            inner: lock::SpinLock::new(data),
            holder: AtomicUsize::new(NO_HOLDER),
            wait_ticks: AtomicU64::new(0),
        }
    }

    /// Turns interrupts off and takes the lock. Panics if this hart already holds it. Never
    /// inlined: a debugger stopped in a caller sees the caller's frame, not the lock's code.
    #[inline(never)]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        let irq = IrqGuard::new();
        let me = hart::id();
        if self.holder.load(Ordering::Relaxed) == me {
            panic!(
                "sync: hart {me} takes the {} lock it already holds",
                self.name
            );
        }
        let guard = match self.inner.try_lock() {
            Some(g) => g,
            None => {
                let t0 = crate::timer::now();
                let g = self.inner.lock();
                self.wait_ticks
                    .fetch_add(crate::timer::now() - t0, Ordering::Relaxed);
                g
            }
        };
        self.holder.store(me, Ordering::Relaxed);
        SpinLockGuard {
            guard,
            holder: &self.holder,
            _irq: irq,
        }
    }

    /// The lock's cost counters (see `LockStat`): name, acquisitions, contended ones, spins,
    /// and the time waited in microseconds.
    pub fn report(&self) -> LockStat {
        let s = self.inner.stats();
        let mut name = [0u8; LOCK_NAME_LEN];
        let n = self.name.len().min(LOCK_NAME_LEN - 1);
        name[..n].copy_from_slice(&self.name.as_bytes()[..n]);
        let hz = crate::timer::timebase().max(1);
        let ticks = self.wait_ticks.load(Ordering::Relaxed);
        LockStat {
            name,
            acquired: s.acquired,
            contended: s.contended,
            spins: s.spins,
            wait_us: (ticks as u128 * 1_000_000 / hz as u128) as u64,
        }
    }

    /// A guard for the lock, which this flow holds without one: it was leaked
    /// ([`SpinLockGuard::leak`]) by the flow that switched to this one.
    ///
    /// # Safety
    /// The lock must be held (by the flow that switched here) and have no live guard.
    pub unsafe fn assume_locked(&self) -> SpinLockGuard<'_, T> {
        let irq = IrqGuard::new();
        self.holder.store(hart::id(), Ordering::Relaxed);
        SpinLockGuard {
            // SAFETY: forwarded contract.
            guard: unsafe { self.inner.assume_locked() },
            holder: &self.holder,
            _irq: irq,
        }
    }
}

impl<T> SpinLockGuard<'_, T> {
    /// Gives up the guard without releasing the lock, for a context switch that hands the
    /// lock to the flow switched to (which takes it back with `SpinLock::assume_locked`).
    /// Interrupts stay off (the kernel keeps them off anyway).
    pub fn leak(self) {
        self.holder.store(NO_HOLDER, Ordering::Relaxed);
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the guard is moved out exactly once and then
        // leaked (the lock stays held); the IrqGuard is plain data and is simply forgotten.
        let guard = unsafe { core::ptr::read(&this.guard) };
        guard.leak();
    }
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.holder.store(NO_HOLDER, Ordering::Relaxed);
    }
}
