//! [`Locked`]: the arbiter's state locked by one side (the client's thread, a sampler), which
//! wakes the other side, if it waits outside the lock, when it lets go after changing what
//! that side waits for.

use std::ops::{Deref, DerefMut};
use std::sync::MutexGuard;

use super::arbiter::{Arbiter, Client, Run, State};
use super::guest::Guest;

/// What waiters wait for, at a glance: when it differs after a lock is released, the other
/// side is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    connects: u64,
    halted: Option<bool>,
    client: Option<(Run, bool)>,
    sampler: (bool, bool, bool),
}

/// Who holds the lock: the other side is woken when it is released (see [`Locked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Party {
    Client,
    Sampler,
    /// The arbiter's owner (shutdown, tests): both sides are woken.
    Owner,
}

/// The arbiter's state, locked by one side. On release the other side is woken if it waits
/// and something it waits for changed (a stop found for it, the guest resumed or halted, a
/// new connection). Waiters re-check, so a needless wake costs one look.
pub(super) struct Locked<'a, G: Guest> {
    state: MutexGuard<'a, State<G>>,
    arbiter: &'a Arbiter<G>,
    by: Party,
    before: Seen,
}

impl<G: Guest> Deref for Locked<'_, G> {
    type Target = State<G>;
    fn deref(&self) -> &State<G> {
        &self.state
    }
}

impl<G: Guest> DerefMut for Locked<'_, G> {
    fn deref_mut(&mut self) -> &mut State<G> {
        &mut self.state
    }
}

impl<G: Guest> Drop for Locked<'_, G> {
    fn drop(&mut self) {
        if self.state.seen() == self.before {
            return;
        }
        if self.by != Party::Client && self.state.client.as_ref().is_some_and(Client::waits) {
            self.arbiter.client_wake.wake();
        }
        if self.by != Party::Sampler && self.state.sampler_waiting > 0 {
            self.arbiter.sampler_wake.wake();
        }
    }
}

impl<G: Guest> Arbiter<G> {
    pub(super) fn lock_by(&self, by: Party) -> Locked<'_, G> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = state.seen();
        Locked {
            state,
            arbiter: self,
            by,
            before,
        }
    }
}

impl<G: Guest> State<G> {
    fn seen(&self) -> Seen {
        Seen {
            connects: self.connects,
            halted: self.guest.as_ref().map(|g| g.is_halted()),
            client: self.client.as_ref().map(|c| (c.run, c.pending.is_some())),
            sampler: (
                self.sampler_hold,
                self.sampler_pending.is_some(),
                self.sampler_reading > 0,
            ),
        }
    }
}
