//! The spin lock that serializes the tracker's writers when several harts (or host threads)
//! change it, and that the kernel also uses around its other shared tables.
//!
//! Contract: at most one [`SpinGuard`] of a lock exists at a time; the guard's holder has the
//! only access to the data. Acquiring is an atomic swap with acquire ordering, releasing a store
//! with release ordering, so every store made under the lock is visible to the next holder.
//! The lock counts what it costs (acquisitions, contended acquisitions, spin iterations) with
//! relaxed atomics: numbers for a benchmark, not for correctness. It does not disable
//! interrupts: the kernel wraps it (`sync::SpinLock`) so that a holder is never interrupted
//! on its own hart.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A test-and-test-and-set spin lock over `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    stats: LockCounters,
    data: UnsafeCell<T>,
}

// SAFETY: the data is reached only through a guard, and at most one guard exists at a time
// (the atomic swap in `try_lock`), so sharing the lock between threads shares `T` between them
// one at a time: `T: Send` suffices.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Cost counters of one lock (relaxed; read with [`SpinLock::stats`]).
struct LockCounters {
    acquired: AtomicU64,
    contended: AtomicU64,
    spins: AtomicU64,
}

/// A copy of a lock's cost counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Acquisitions since boot.
    pub acquired: u64,
    /// Acquisitions that found the lock held and had to wait.
    pub contended: u64,
    /// Iterations spent waiting, over all acquisitions.
    pub spins: u64,
}

impl<T> SpinLock<T> {
    pub const fn new(data: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            stats: LockCounters {
                acquired: AtomicU64::new(0),
                contended: AtomicU64::new(0),
                spins: AtomicU64::new(0),
            },
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        if self.locked.swap(true, Ordering::Acquire) {
            return None;
        }
        self.stats.acquired.fetch_add(1, Ordering::Relaxed);
        Some(SpinGuard { lock: self })
    }

    /// Takes the lock, spinning until it is free. Deadlocks if this flow already holds it.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        if let Some(g) = self.try_lock() {
            return g;
        }
        self.stats.contended.fetch_add(1, Ordering::Relaxed);
        let mut spins = 0u64;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                core::hint::spin_loop();
            }
            if let Some(g) = self.try_lock() {
                self.stats.spins.fetch_add(spins, Ordering::Relaxed);
                return g;
            }
        }
    }

    /// Whether some flow holds the lock right now (a hint: it may change at once).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// The cost counters so far.
    pub fn stats(&self) -> LockStats {
        LockStats {
            acquired: self.stats.acquired.load(Ordering::Relaxed),
            contended: self.stats.contended.load(Ordering::Relaxed),
            spins: self.stats.spins.load(Ordering::Relaxed),
        }
    }

    /// A guard for a lock that the caller holds without a guard (one it gave up with
    /// [`SpinGuard::leak`], typically before a context switch that hands the lock to another
    /// flow of control).
    ///
    /// # Safety
    /// The lock must be held, and no other guard of it may exist.
    pub unsafe fn assume_locked(&self) -> SpinGuard<'_, T> {
        debug_assert!(self.is_locked());
        SpinGuard { lock: self }
    }

    /// Releases a lock that the caller holds without a guard (see [`assume_locked`](Self::assume_locked)).
    ///
    /// # Safety
    /// As for `assume_locked`.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: forwarded contract.
        drop(unsafe { self.assume_locked() });
    }
}

/// Exclusive access to a [`SpinLock`]'s data; the lock is released on drop.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<'a, T> SpinGuard<'a, T> {
    /// Keeps the lock held but drops the guard (see [`SpinLock::assume_locked`]).
    pub fn leak(self) {
        core::mem::forget(self);
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard is the only access to the data while it lives (type contract).
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
