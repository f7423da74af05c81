//! `HaltGuard`: halts a target for the span of a borrow and resumes it when dropped, so the guest
//! is never left halted by an early return, an error or a panic. Measures the pause.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::{StopReason, Target, TargetError};

/// Holds a halted target. Contract: if the guard halted the guest, the guest is resumed when the
/// guard ends ([`HaltGuard::resume`] or drop); if the guest was halted already (say, at a
/// breakpoint), the guard leaves it halted and tells the target it is done with it
/// ([`Target::release`]).
pub struct HaltGuard<'t, T: Target + ?Sized> {
    target: &'t mut T,
    stop: StopReason,
    /// Set when the guard halted the guest: the instant just before the interrupt was sent.
    halted_at: Option<Instant>,
    /// The guest was halted already: released when the guard ends.
    borrowed: bool,
}

impl<'t, T: Target + ?Sized> HaltGuard<'t, T> {
    /// Halts `target` (a no-op if halted already).
    pub fn new(target: &'t mut T) -> Result<Self, TargetError> {
        let was_halted = target.is_halted();
        let start = Instant::now();
        let stop = target.halt()?;
        let halted_at = (!was_halted && stop != StopReason::AlreadyHalted).then_some(start);
        Ok(HaltGuard {
            target,
            stop,
            borrowed: halted_at.is_none(),
            halted_at,
        })
    }

    /// Why the guest is halted.
    pub fn stop_reason(&self) -> StopReason {
        self.stop
    }

    /// True if this guard halted the guest and will resume it.
    pub fn will_resume(&self) -> bool {
        self.halted_at.is_some()
    }

    /// Time since the interrupt was sent; zero if the guard did not halt the guest.
    pub fn elapsed(&self) -> Duration {
        self.halted_at.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Resumes the guest (if this guard halted it) and returns the pause: from just before the
    /// interrupt was sent to just after the continue was sent. Zero if the guard did not halt it.
    pub fn resume(mut self) -> Result<Duration, TargetError> {
        match self.halted_at.take() {
            Some(start) => {
                self.target.resume()?;
                Ok(start.elapsed())
            }
            None => Ok(Duration::ZERO),
        }
    }
}

impl<T: Target + ?Sized> Deref for HaltGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.target
    }
}

impl<T: Target + ?Sized> DerefMut for HaltGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.target
    }
}

impl<T: Target + ?Sized> Drop for HaltGuard<'_, T> {
    fn drop(&mut self) {
        if self.halted_at.take().is_some() {
            // Best effort on error and panic paths; an RspTarget that cannot resume detaches
            // when dropped, which also resumes the guest.
            let _ = self.target.resume();
        } else if self.borrowed {
            self.target.release();
        }
    }
}
