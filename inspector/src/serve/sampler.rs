//! [`SamplerTarget`]: the sampler's side of the [`Arbiter`], a [`Target`] over the shared
//! connection under the arbiter's rules (see `arbiter`): its halts are its own, a stop at its
//! breakpoints found by the client's thread waits for it, and a guest the client holds is
//! read in place and never resumed.

use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::arbiter::{Arbiter, State, CLIENT, STOP_POLL};
use super::guest::Guest;
use crate::riscv::Registers;
use crate::target::{BreakpointKind, StopReason, Target, TargetError};

/// The sampler's [`Target`]: the shared connection, under the arbiter's rules (module doc).
/// Dropping it detaches it.
pub struct SamplerTarget<G: Guest> {
    arbiter: Arc<Arbiter<G>>,
    detached: bool,
}

impl<G: Guest> SamplerTarget<G> {
    pub(super) fn new(arbiter: Arc<Arbiter<G>>) -> SamplerTarget<G> {
        SamplerTarget {
            arbiter,
            detached: false,
        }
    }

    fn state(&self) -> Result<MutexGuard<'_, State<G>>, TargetError> {
        if self.detached {
            return Err(TargetError::Detached);
        }
        Ok(self.arbiter.lock())
    }
}

impl<G: Guest> State<G> {
    /// The sampler may touch the halted guest: it holds it, or the client does.
    fn sampler_check(&mut self, op: &'static str) -> Result<&mut G, TargetError> {
        if !self.sampler_hold && !self.client_holds() {
            return Err(TargetError::NotHalted { op });
        }
        self.guest()
    }
}

impl<G: Guest> Target for SamplerTarget<G> {
    /// A stop at a sampler breakpoint found meanwhile is returned first; while the client
    /// holds the guest, `AlreadyHalted` (so a `HaltGuard` leaves it to the client).
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        let mut s = self.state()?;
        if let Some(reason) = s.sampler_pending.take() {
            s.sampler_hold = true;
            return Ok(reason);
        }
        if s.sampler_hold || s.client_holds() {
            return Ok(StopReason::AlreadyHalted);
        }
        s.halt_guest()?;
        if let Some(reason) = s.sampler_pending.take() {
            s.sampler_hold = true;
            return Ok(reason);
        }
        if s.client_holds() {
            return Ok(StopReason::AlreadyHalted);
        }
        s.sampler_hold = true;
        Ok(StopReason::Interrupted)
    }

    /// The hart that stopped is selected again first: the step over the breakpoint it
    /// stopped at (`settle`) is decided on its pc.
    fn resume(&mut self) -> Result<(), TargetError> {
        let mut s = self.state()?;
        if s.sampler_hold {
            let g = s.guest()?;
            if let Some(h) = g.stopped_hart().filter(|&h| g.selected_hart() != Some(h)) {
                g.select_hart(h)?;
                s.regs = None;
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
        Ok(())
    }

    fn is_halted(&self) -> bool {
        match self.state() {
            Ok(s) => s.sampler_hold || s.client_holds(),
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
        s.guest()?.monitor(command)
    }

    /// Stops that are not the sampler's are dealt with meanwhile (see the module doc); a
    /// guest the client holds reads as `AlreadyHalted`.
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut s = self.state()?;
                if let Some(reason) = s.sampler_pending.take() {
                    s.sampler_hold = true;
                    return Ok(Some(reason));
                }
                if s.sampler_hold || s.client_holds() {
                    return Ok(Some(StopReason::AlreadyHalted));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                let g = s.guest()?;
                if !g.is_halted() {
                    if let Some(reason) = g.wait_for_stop(left.min(STOP_POLL))? {
                        s.classify(reason)?;
                        if let Some(reason) = s.sampler_pending.take() {
                            s.sampler_hold = true;
                            return Ok(Some(reason));
                        }
                        s.settle()?;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            // Let the client's thread have the connection between two looks.
            std::thread::sleep(STOP_POLL);
        }
    }

    /// Removes the sampler's breakpoints and lets go of the guest; the connection is detached
    /// too once no sampler and no client use it.
    fn detach(&mut self) -> Result<(), TargetError> {
        if self.detached {
            return Ok(());
        }
        let mut s = self.arbiter.lock();
        self.detached = true;
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
