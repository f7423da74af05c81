//! [`SamplerTarget`]: the sampler's side of the [`Arbiter`], a [`Target`] over the shared
//! connection under the arbiter's rules (see `arbiter`): its halts are its own, a stop at its
//! breakpoints found by the client's thread waits for it, and a guest the client holds is
//! read in place and never resumed (the client's own continue waits for that read to end).

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arbiter::{Arbiter, ClientNext, Locked, Party, State, CLIENT, STOP_READ};
use super::guest::Guest;
use super::wake;
use crate::riscv::Registers;
use crate::target::{BreakpointKind, StopReason, Target, TargetError};

/// The sampler's [`Target`]: the shared connection, under the arbiter's rules (module doc).
/// Dropping it detaches it.
pub struct SamplerTarget<G: Guest> {
    arbiter: Arc<Arbiter<G>>,
    detached: bool,
    /// This sampler reads a guest the client held when it halted (counted in
    /// `State::sampler_reading` until it releases it).
    reading: bool,
}

impl<G: Guest> SamplerTarget<G> {
    pub(super) fn new(arbiter: Arc<Arbiter<G>>) -> SamplerTarget<G> {
        SamplerTarget {
            arbiter,
            detached: false,
            reading: false,
        }
    }

    /// Ends this sampler's read in place, if any (the caller settles the guest after).
    fn end_reading(reading: &mut bool, s: &mut State<G>) {
        if std::mem::take(reading) {
            s.sampler_reading = s.sampler_reading.saturating_sub(1);
        }
    }

    /// Starts a read in place of the guest the client holds.
    fn start_reading(reading: &mut bool, s: &mut State<G>) {
        if !std::mem::replace(reading, true) {
            s.sampler_reading += 1;
        }
    }

    fn state(&self) -> Result<Locked<'_, G>, TargetError> {
        Self::locked(&self.arbiter, self.detached)
    }

    /// [`Self::state`] borrowing only the arbiter (so `self.reading` stays free to change).
    fn locked(arbiter: &Arbiter<G>, detached: bool) -> Result<Locked<'_, G>, TargetError> {
        if detached {
            return Err(TargetError::Detached);
        }
        Ok(arbiter.lock_by(Party::Sampler))
    }
}

impl<G: Guest> State<G> {
    /// The sampler may touch the halted guest: it holds it, or the client does (or did when
    /// a read in place began).
    fn sampler_check(&mut self, op: &'static str) -> Result<&mut G, TargetError> {
        if !self.sampler_hold && !self.client_holds() && self.sampler_reading == 0 {
            return Err(TargetError::NotHalted { op });
        }
        self.guest()
    }
}

impl<G: Guest> Target for SamplerTarget<G> {
    /// A stop at a sampler breakpoint found meanwhile is returned first; while the client
    /// holds the guest, `AlreadyHalted` (so a `HaltGuard` leaves it to the client) and a read
    /// in place begins, until [`Target::release`] (or the next halt or resume). A halt ends
    /// the previous read in place.
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        let mut s = Self::locked(&self.arbiter, self.detached)?;
        Self::end_reading(&mut self.reading, &mut s);
        if let Some(reason) = s.sampler_pending.take() {
            s.sampler_hold = true;
            return Ok(reason);
        }
        if s.client_holds() && !s.sampler_hold {
            Self::start_reading(&mut self.reading, &mut s);
            return Ok(StopReason::AlreadyHalted);
        }
        if s.sampler_hold {
            return Ok(StopReason::AlreadyHalted);
        }
        s.halt_guest()?;
        if let Some(reason) = s.sampler_pending.take() {
            s.sampler_hold = true;
            return Ok(reason);
        }
        if s.client_holds() {
            Self::start_reading(&mut self.reading, &mut s);
            return Ok(StopReason::AlreadyHalted);
        }
        s.sampler_hold = true;
        Ok(StopReason::Interrupted)
    }

    /// The hart that stopped is selected again first: the step over the breakpoint it
    /// stopped at (`settle`) is decided on its pc.
    fn resume(&mut self) -> Result<(), TargetError> {
        let mut s = Self::locked(&self.arbiter, self.detached)?;
        Self::end_reading(&mut self.reading, &mut s);
        if s.sampler_hold {
            let g = s.guest()?;
            if let Some(h) = g.stopped_hart().filter(|&h| g.selected_hart() != Some(h)) {
                g.select_hart(h)?;
                // Another hart: other registers, and another page table for its reads.
                s.regs = None;
                s.client_reads.clear();
            }
        }
        s.sampler_hold = false;
        s.sampler_pending = None;
        s.settle()
    }

    fn stopped_hart(&self) -> Option<u32> {
        self.state().ok()?.guest.as_ref()?.stopped_hart()
    }

    fn selected_hart(&self) -> Option<u32> {
        self.state().ok()?.guest.as_ref()?.selected_hart()
    }

    fn harts(&mut self) -> Result<Vec<u32>, TargetError> {
        let mut s = self.state()?;
        s.sampler_check("list the harts")?.harts()
    }

    /// While the client holds the guest, refused: its hart is the client's business.
    fn select_hart(&mut self, hart: u32) -> Result<(), TargetError> {
        let mut s = self.state()?;
        if !s.sampler_hold && s.client_holds() {
            return Err(TargetError::HeldElsewhere {
                op: "select a hart",
                by: CLIENT,
            });
        }
        s.sampler_check("select a hart")?.select_hart(hart)?;
        s.regs = None;
        s.client_reads.clear();
        Ok(())
    }

    /// Ends a read in place: a continue or step the client asked for meanwhile goes ahead.
    fn release(&mut self) {
        if !self.reading {
            return;
        }
        if let Ok(mut s) = Self::locked(&self.arbiter, self.detached) {
            Self::end_reading(&mut self.reading, &mut s);
            let _ = s.settle();
        }
    }

    fn is_halted(&self) -> bool {
        match self.state() {
            Ok(s) => s.sampler_hold || s.client_holds() || self.reading,
            Err(_) => false,
        }
    }

    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let mut s = self.state()?;
        s.sampler_check("read memory")?;
        let physical = s.sampler_physical;
        s.memory_mode(physical)?;
        s.guest()?.read_memory(addr, buf)
    }

    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        let mut s = self.state()?;
        s.sampler_check("write memory")?;
        s.client_reads.clear();
        let physical = s.sampler_physical;
        s.memory_mode(physical)?;
        s.guest()?.write_memory(addr, data)
    }

    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        let mut s = self.state()?;
        s.sampler_check("read registers")?;
        s.registers()
    }

    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        let mut s = self.state()?;
        s.sampler_check("set a breakpoint")?;
        if s.sampler_breakpoints.insert(addr) {
            if let Err(e) = s.sync_breakpoint(addr) {
                s.sampler_breakpoints.remove(&addr);
                return Err(e);
            }
        }
        Ok(BreakpointKind::Software)
    }

    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        let mut s = self.state()?;
        s.sampler_check("remove a breakpoint")?;
        if !s.sampler_breakpoints.remove(&addr) {
            return Err(TargetError::NoBreakpoint { addr });
        }
        s.sync_breakpoint(addr)
    }

    fn step(&mut self) -> Result<StopReason, TargetError> {
        let mut s = self.state()?;
        if !s.sampler_hold && s.client_holds() {
            return Err(TargetError::HeldElsewhere {
                op: "single-step",
                by: CLIENT,
            });
        }
        s.sampler_check("single-step")?;
        s.step_guest()
    }

    fn monitor(&mut self, command: &str) -> Result<String, TargetError> {
        let mut s = self.state()?;
        s.sampler_check("run a monitor command")?;
        s.client_reads.clear();
        s.guest()?.monitor(command)
    }

    /// Stops that are not the sampler's are dealt with meanwhile (see the module doc); a
    /// guest the client holds reads as `AlreadyHalted`. Waits outside the lock (poll(2) on the
    /// connection, woken by the client's changes), so the client is never kept waiting.
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        let deadline = Instant::now() + timeout;
        loop {
            let wait = {
                let mut s = self.state()?;
                if let Some(reason) = s.sampler_pending.take() {
                    s.sampler_hold = true;
                    return Ok(Some(reason));
                }
                if s.sampler_hold || s.client_holds() {
                    return Ok(Some(StopReason::AlreadyHalted));
                }
                let g = s.guest()?;
                let running = !g.is_halted();
                if running && g.stop_ready() {
                    if let Some(reason) = g.wait_for_stop(STOP_READ)? {
                        s.classify(reason)?;
                        if let Some(reason) = s.sampler_pending.take() {
                            s.sampler_hold = true;
                            return Ok(Some(reason));
                        }
                        s.settle()?;
                        continue;
                    }
                }
                s.sampler_waiting += 1;
                s.wait_on(running)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if let ClientNext::Wait { guest, timeout } = wait {
                let fd = guest.as_ref().map(|fd| fd.as_fd());
                wake::wait(None, fd, &self.arbiter.sampler_wake, timeout.min(left));
            }
            let mut s = self.arbiter.lock_by(Party::Sampler);
            s.sampler_waiting = s.sampler_waiting.saturating_sub(1);
            drop(s);
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Removes the sampler's breakpoints and lets go of the guest; the connection is detached
    /// too once no sampler and no client use it.
    fn detach(&mut self) -> Result<(), TargetError> {
        if self.detached {
            return Ok(());
        }
        let mut s = self.arbiter.lock_by(Party::Sampler);
        self.detached = true;
        Self::end_reading(&mut self.reading, &mut s);
        s.samplers = s.samplers.saturating_sub(1);
        let mut result = Ok(());
        if s.guest.is_some() {
            if !s.sampler_breakpoints.is_empty() {
                result = s.halt_guest();
                let addrs = std::mem::take(&mut s.sampler_breakpoints);
                for addr in addrs {
                    if let Err(e) = s.sync_breakpoint(addr) {
                        result = result.and(Err(e));
                    }
                }
            }
            s.sampler_hold = false;
            s.sampler_pending = None;
            if s.samplers == 0 && s.client.is_none() {
                if let Some(mut g) = s.guest.take() {
                    result = result.and(g.detach());
                }
                s.forget_guest();
            } else {
                result = result.and(s.settle());
            }
        }
        result
    }
}

impl<G: Guest> Drop for SamplerTarget<G> {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}
