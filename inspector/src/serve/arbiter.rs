//! [`Arbiter`]: one connection to the guest shared by the inspector's sampler (the views, the
//! TUI's debugger) and one gdb client. It owns the connection, knows whose breakpoint is whose
//! and who holds the guest stopped, and decides whose every stop is.
//!
//! Contract (checked by the tests below):
//! - the guest runs exactly when nobody holds it: not the sampler (a read in progress, or the
//!   TUI's debugger at a stop), not the client (stopped in gdb), and no stop waits to be seen;
//! - a stop is the client's when it was the client's interrupt or single step, or a trap at a
//!   breakpoint the client set (or, at no breakpoint, a watchpoint of the client's) while the
//!   client waited for a stop; it is the sampler's when the sampler interrupted, or a trap at one
//!   of the sampler's breakpoints. A breakpoint both set is seen by both. A stop nobody owns is
//!   resumed. So the client never receives a stop it did not cause, and the reverse;
//! - while the client holds the guest, the sampler reads the held state and never resumes it;
//!   the sampler cannot step it ([`TargetError::HeldElsewhere`]). A client's continue or step
//!   meanwhile waits for the sampler's read to end ([`Target::release`], or its next halt or
//!   resume), so no snapshot is torn by the guest moving under it;
//! - when the client goes (detach, disconnect, death), its breakpoints and watchpoints are
//!   removed and the guest resumes unless the sampler holds it;
//! - one client at a time: [`Arbiter::attach_client`] refuses a second;
//! - memory addresses are physical for the sampler (when the stub can) and virtual for the
//!   client, as the client would see them talking to QEMU directly.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::guest::{Guest, WatchKind};
pub(super) use super::locked::{Locked, Party};
use super::memcache::MemCache;
use super::sampler::SamplerTarget;
use super::wake::Waker;
use crate::riscv::Registers;
#[cfg(doc)]
use crate::target::Target;
use crate::target::{StopReason, TargetError};

/// How the arbiter (re)connects to the guest.
pub type Connect<G> = Box<dyn FnMut() -> Result<G, TargetError> + Send>;

/// How often a waiter looks at a guest whose connection has no descriptor to poll (tests).
pub const STOP_POLL: Duration = Duration::from_millis(1);

/// How long taking a stop whose bytes are arriving may hold the connection (a stop reply is
/// short: it has all arrived long before).
pub(super) const STOP_READ: Duration = Duration::from_millis(50);

/// The longest a waiter sleeps without looking again: a safety net only, since every change
/// it waits for wakes it (the guest's connection becomes readable, or the other side's
/// [`Locked`] wakes it).
pub const IDLE_LOOK: Duration = Duration::from_millis(200);

/// Who the gdb client is, in error messages.
pub(super) const CLIENT: &str = "the gdb attached through the inspector";

/// Why the client's guest stopped, as gdb is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStop {
    /// At one of the client's breakpoints.
    Breakpoint,
    /// The client's single step is done.
    Step,
    /// The client's interrupt (Ctrl-C in gdb).
    Interrupted,
    /// One of the client's watchpoints fired at data address `addr`.
    Watch { kind: WatchKind, addr: u64 },
    /// Another signal.
    Signal(u8),
}

/// A second client was refused.
#[derive(Debug, thiserror::Error)]
#[error("another gdb is attached through the inspector; detach it first (one client at a time)")]
pub struct Busy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Run {
    /// Stopped in gdb (the client holds the guest).
    Held,
    /// Continued; waits for a stop.
    Continue,
    /// Asked for one instruction; waits for it.
    Step,
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) run: Run,
    /// A stop of the client's not yet told to gdb (the client holds the guest meanwhile).
    pub(super) pending: Option<ClientStop>,
    /// The client's breakpoints and their instruction lengths as gdb gave them (None: look it
    /// up when installing).
    pub(super) breakpoints: BTreeMap<u64, Option<u32>>,
    pub(super) watchpoints: BTreeSet<(WatchKind, u64, u64)>,
    /// While continued with scheduler locking: the harts that run (the others stay stopped,
    /// whoever resumes the guest meanwhile). None: every hart.
    pub(super) only: Option<Vec<u32>>,
}

impl Client {
    fn stop(&mut self, why: ClientStop) {
        self.run = Run::Held;
        self.pending = Some(why);
    }

    /// True while the client's thread may be waiting for a stop (or has one to collect).
    pub(super) fn waits(&self) -> bool {
        self.run != Run::Held || self.pending.is_some()
    }
}

/// What the client's thread does next, from [`Arbiter::client_next`].
#[derive(Debug)]
pub enum ClientNext {
    /// Tell gdb about this stop.
    Stop(ClientStop),
    /// No stop yet: wait (for gdb's bytes, [`Arbiter::client_waker`] and, if given, `guest`
    /// becoming readable) at most `timeout`, then ask again.
    Wait {
        guest: Option<Arc<OwnedFd>>,
        timeout: Duration,
    },
}

pub(super) struct State<G: Guest> {
    pub(super) guest: Option<G>,
    pub(super) connect: Connect<G>,
    /// The sampler halted the guest and has not resumed it.
    pub(super) sampler_hold: bool,
    /// Sampler reads in progress on a guest the client held when they began (each keeps the
    /// guest halted until it ends, whatever the client asks meanwhile).
    pub(super) sampler_reading: usize,
    /// A stop at a sampler breakpoint, found by someone else, that the sampler has not seen.
    pub(super) sampler_pending: Option<StopReason>,
    pub(super) sampler_breakpoints: BTreeSet<u64>,
    /// Whether the sampler's memory addresses are physical (the stub's mode at connect).
    pub(super) sampler_physical: bool,
    /// Live sampler handles.
    pub(super) samplers: usize,
    pub(super) client: Option<Client>,
    /// Breakpoints in the guest: the union of the sampler's and the client's.
    pub(super) installed: BTreeSet<u64>,
    /// The pc of the last trap at an installed breakpoint, until the guest moves: resuming
    /// from there steps over that breakpoint first.
    pub(super) trapped_at: Option<u64>,
    /// The halted guest's registers, read once per stop (gdb asks after every step; so do
    /// the arbiter's own decisions). Cleared whenever the guest may have moved.
    pub(super) regs: Option<Registers>,
    /// The client's memory reads of this stop (see `memcache`); cleared with `regs`, and
    /// whenever memory may have changed.
    pub(super) client_reads: MemCache,
    /// A duplicate of the connection's descriptor, for waiters to poll outside the lock (None
    /// without a connection, or for a connection without one).
    pub(super) guest_fd: Option<Arc<OwnedFd>>,
    /// Sampler threads waiting for a stop outside the lock (to be woken by client changes).
    pub(super) sampler_waiting: usize,
    /// Connections made so far (a new one is a change waiters must see).
    pub(super) connects: u64,
    /// Trap stops (breakpoints, watchpoints) the guest reported, whoever's they were.
    pub(super) traps: u64,
}

/// See the module doc.
pub struct Arbiter<G: Guest> {
    pub(super) state: Mutex<State<G>>,
    /// Wakes the client's thread out of its wait for a stop.
    pub(super) client_wake: Waker,
    /// Wakes a sampler thread out of its wait for a stop.
    pub(super) sampler_wake: Waker,
}

impl<G: Guest> Arbiter<G> {
    /// An arbiter that connects with `connect` when first needed (and again after the
    /// connection is lost).
    pub fn new(connect: Connect<G>) -> Arc<Arbiter<G>> {
        Arc::new(Arbiter {
            state: Mutex::new(State {
                guest: None,
                connect,
                sampler_hold: false,
                sampler_reading: 0,
                sampler_pending: None,
                sampler_breakpoints: BTreeSet::new(),
                sampler_physical: false,
                samplers: 0,
                client: None,
                installed: BTreeSet::new(),
                trapped_at: None,
                regs: None,
                client_reads: MemCache::default(),
                guest_fd: None,
                sampler_waiting: 0,
                connects: 0,
                traps: 0,
            }),
            client_wake: Waker::new(),
            sampler_wake: Waker::new(),
        })
    }

    /// The state, locked by the client's side (or the arbiter's owner).
    pub(super) fn lock(&self) -> Locked<'_, G> {
        self.lock_by(Party::Client)
    }

    /// Lets the client's reads within `ranges` (the kernel's load segments, virtual addresses:
    /// RAM, never device registers; each with whether it is writable) be answered from blocks
    /// read once per stop (once for good in read-only ones).
    pub fn read_ahead_in(&self, ranges: Vec<(std::ops::Range<u64>, bool)>) {
        let mut s = self.lock();
        s.client_reads = MemCache::new(ranges);
    }

    /// What wakes the client's thread out of [`ClientNext::Wait`].
    pub fn client_waker(&self) -> &Waker {
        &self.client_wake
    }

    /// A [`Target`] for the sampler over the shared connection (connecting now if needed).
    pub fn sampler_target(self: &Arc<Self>) -> Result<SamplerTarget<G>, TargetError> {
        let mut s = self.lock();
        s.guest()?;
        s.samplers += 1;
        Ok(SamplerTarget::new(self.clone()))
    }

    /// The gdb client attaches: the guest halts and the client holds it. [`Busy`] if a client
    /// is attached already.
    pub fn attach_client(&self) -> Result<Result<(), Busy>, TargetError> {
        let mut s = self.lock();
        if s.client.is_some() {
            return Ok(Err(Busy));
        }
        s.guest()?;
        s.client = Some(Client {
            run: Run::Held,
            pending: None,
            breakpoints: BTreeMap::new(),
            watchpoints: BTreeSet::new(),
            only: None,
        });
        s.halt_guest()?;
        Ok(Ok(()))
    }

    /// The client is gone (detached, disconnected or dead): its breakpoints and watchpoints are
    /// removed and the guest resumes unless the sampler holds it. Best effort; idempotent.
    pub fn detach_client(&self) {
        let mut s = self.lock();
        let Some(client) = s.client.take() else {
            return;
        };
        if s.guest.is_none() {
            return;
        }
        if s.halt_guest().is_err() {
            return;
        }
        let g = s.guest.as_mut().expect("present");
        for (kind, addr, len) in client.watchpoints {
            let _ = g.remove_watchpoint(kind, addr, len);
        }
        for addr in client.breakpoints.into_keys() {
            let _ = s.sync_breakpoint(addr);
        }
        let _ = s.settle();
    }

    /// Breakpoint and watchpoint stops the guest has reported since the arbiter began,
    /// whoever's they were (single steps not counted): what the stub did, for tests and
    /// diagnostics.
    pub fn traps(&self) -> u64 {
        self.lock().traps
    }

    /// True while a gdb client is attached.
    pub fn client_attached(&self) -> bool {
        self.lock().client.is_some()
    }

    /// The pc where the client holds the guest stopped, if it does.
    pub fn held_by_client(&self) -> Option<u64> {
        let mut s = self.lock();
        if !s.client.as_ref().is_some_and(|c| c.run == Run::Held) {
            return None;
        }
        s.guest.as_ref()?;
        s.registers().ok().map(|r| r.pc())
    }

    /// The client continues: the guest runs once nobody else holds it.
    pub fn client_resume(&self) -> Result<(), TargetError> {
        self.client_resume_harts(None)
    }

    /// Like [`client_resume`](Self::client_resume), continuing `harts` alone (gdb's scheduler
    /// locking: `vCont;c:THREAD`) until the client's next stop; None: every hart.
    pub fn client_resume_harts(&self, harts: Option<Vec<u32>>) -> Result<(), TargetError> {
        let mut s = self.lock();
        let client = s.client_mut()?;
        client.run = Run::Continue;
        client.only = harts;
        s.settle()
    }

    /// The client single-steps: one instruction, once nobody else holds the guest.
    pub fn client_step(&self) -> Result<(), TargetError> {
        self.client_step_hart(None)
    }

    /// Like [`client_step`](Self::client_step), stepping `hart` (None: the one that stopped)
    /// alone. Another hart stays selected until its step is done, so the sampler, if it holds
    /// the guest meanwhile, reads that hart's registers.
    pub fn client_step_hart(&self, hart: Option<u32>) -> Result<(), TargetError> {
        let mut s = self.lock();
        if s.client_mut()?.run == Run::Held {
            if let Some(h) = s.other_hart(hart)? {
                s.guest()?.select_hart(h)?;
                s.regs = None;
                s.trapped_at = None;
            }
        }
        s.client_mut()?.run = Run::Step;
        s.settle()
    }

    /// The harts of the guest (the client's threads). The client must hold the guest.
    pub fn client_harts(&self) -> Result<Vec<u32>, TargetError> {
        self.client_op("list the harts", |s| s.guest()?.harts())
    }

    /// The hart the guest's last stop names, when the stub says.
    pub fn stopped_hart(&self) -> Option<u32> {
        self.lock().guest.as_ref()?.stopped_hart()
    }

    /// The client's stop, if one happened; takes a stop of the running guest that has arrived,
    /// never waits for one. Stops that are not the client's are dealt with, never returned.
    pub fn client_poll(&self) -> Result<Option<ClientStop>, TargetError> {
        Ok(match self.client_next()? {
            ClientNext::Stop(stop) => Some(stop),
            ClientNext::Wait { .. } => None,
        })
    }

    /// [`Arbiter::client_poll`], and when there is no stop, what to wait on for one.
    pub fn client_next(&self) -> Result<ClientNext, TargetError> {
        let mut s = self.lock();
        if let Some(stop) = s.client_mut()?.pending.take() {
            return Ok(ClientNext::Stop(stop));
        }
        let waits = s.client_mut()?.run == Run::Continue;
        let g = s.guest()?;
        let running = waits && !g.is_halted();
        if running && g.stop_ready() {
            if let Some(reason) = g.wait_for_stop(STOP_READ)? {
                s.classify(reason)?;
                s.settle()?;
            }
        }
        if let Some(stop) = s.client_mut()?.pending.take() {
            return Ok(ClientNext::Stop(stop));
        }
        Ok(s.wait_on(running))
    }

    /// The client interrupts (Ctrl-C): it holds the guest from now on. Returns the stop to
    /// report (its own breakpoint if one was hit meanwhile, else an interrupt).
    pub fn client_interrupt(&self) -> Result<ClientStop, TargetError> {
        let mut s = self.lock();
        if let Some(stop) = s.client_mut()?.pending.take() {
            return Ok(stop);
        }
        if s.client_mut()?.run == Run::Held {
            return Ok(ClientStop::Interrupted);
        }
        s.halt_guest()?;
        let client = s.client_mut()?;
        if let Some(stop) = client.pending.take() {
            return Ok(stop);
        }
        client.run = Run::Held;
        Ok(ClientStop::Interrupted)
    }

    pub(super) fn client_op<R>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut State<G>) -> Result<R, TargetError>,
    ) -> Result<R, TargetError> {
        let mut s = self.lock();
        if s.client_mut()?.run != Run::Held {
            return Err(TargetError::NotHalted { op });
        }
        f(&mut s)
    }

    /// Ends everything: the client's breakpoints removed, then the connection detached (the
    /// sampler's breakpoints removed, the guest running). Idempotent.
    pub fn shutdown(&self) {
        self.detach_client();
        let mut s = self.lock_by(Party::Owner);
        if let Some(mut g) = s.guest.take() {
            let _ = g.detach();
        }
        s.forget_guest();
    }

    /// Runs `f` on the connection (tests: make the guest hit a breakpoint, look at it).
    pub fn with_guest<R>(&self, f: impl FnOnce(&mut G) -> R) -> Option<R> {
        self.lock_by(Party::Owner).guest.as_mut().map(f)
    }
}

impl<G: Guest> State<G> {
    /// The connection, made now if there is none or it was lost.
    pub(super) fn guest(&mut self) -> Result<&mut G, TargetError> {
        if self.guest.as_mut().is_some_and(|g| g.is_gone()) {
            self.guest = None;
            self.forget_guest();
        }
        if self.guest.is_none() {
            let g = (self.connect)()?;
            self.sampler_physical = g.physical();
            self.guest_fd = g
                .wait_fd()
                .and_then(|fd| fd.try_clone_to_owned().ok())
                .map(Arc::new);
            self.guest = Some(g);
            self.connects += 1;
        }
        Ok(self.guest.as_mut().expect("connected above"))
    }

    /// The connection's state is gone with it (breakpoints, holds).
    pub(super) fn forget_guest(&mut self) {
        self.moved();
        self.client_reads.clear();
        self.guest_fd = None;
        self.sampler_hold = false;
        self.sampler_reading = 0;
        self.sampler_pending = None;
        self.sampler_breakpoints.clear();
        self.installed.clear();
        self.trapped_at = None;
        if let Some(c) = self.client.as_mut() {
            c.breakpoints.clear();
            c.watchpoints.clear();
        }
    }

    /// `hart` when it is a hart other than the one that stopped (a guest that names no stopped
    /// hart has hart 0 selected).
    pub(super) fn other_hart(&mut self, hart: Option<u32>) -> Result<Option<u32>, TargetError> {
        let stopped = self.guest()?.stopped_hart().unwrap_or(0);
        Ok(hart.filter(|&h| h != stopped))
    }

    pub(super) fn client_mut(&mut self) -> Result<&mut Client, TargetError> {
        self.client.as_mut().ok_or(TargetError::Detached)
    }

    pub(super) fn client_holds(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.run == Run::Held)
    }

    /// What a waiter polls for the next stop: the connection's descriptor while the guest runs
    /// (`running`), else nothing but wakes; a connection without a descriptor on a timer.
    pub(super) fn wait_on(&self, running: bool) -> ClientNext {
        let guest = self.guest_fd.clone().filter(|_| running);
        let timeout = if running && guest.is_none() {
            STOP_POLL
        } else {
            IDLE_LOOK
        };
        ClientNext::Wait { guest, timeout }
    }

    /// Halts the guest if it runs, and judges the stop ([`State::classify`]).
    pub(super) fn halt_guest(&mut self) -> Result<(), TargetError> {
        let g = self.guest()?;
        if g.is_halted() {
            return Ok(());
        }
        let reason = g.halt()?;
        self.moved();
        self.classify(reason)
    }

    /// The guest just stopped with `reason`: a trap at someone's breakpoint is theirs (the
    /// client's only while it waits for a stop); another signal goes to a waiting client.
    /// Interrupts are the interrupter's: the caller's business.
    pub(super) fn classify(&mut self, reason: StopReason) -> Result<(), TargetError> {
        self.moved();
        let pc = self.registers()?.pc();
        let watch = self.guest()?.last_watch();
        let at_breakpoint = self.installed.contains(&pc);
        let client = self.client.as_mut().filter(|c| c.run != Run::Held);
        match reason {
            StopReason::Trap => {
                self.traps += 1;
                if at_breakpoint {
                    self.trapped_at = Some(pc);
                }
                if let Some(c) = client {
                    if c.breakpoints.contains_key(&pc) {
                        c.stop(ClientStop::Breakpoint);
                    } else if let (false, Some(addr)) = (at_breakpoint, watch) {
                        let kind = c
                            .watchpoints
                            .iter()
                            .find(|(_, a, len)| (*a..a.saturating_add(*len)).contains(&addr))
                            .map(|w| w.0);
                        if let Some(kind) = kind {
                            c.stop(ClientStop::Watch { kind, addr });
                        }
                    }
                }
                if self.sampler_breakpoints.contains(&pc) {
                    self.sampler_pending = Some(StopReason::Trap);
                }
            }
            StopReason::Signal(n) => {
                if let Some(c) = client {
                    c.stop(ClientStop::Signal(n));
                }
            }
            StopReason::Interrupted | StopReason::AlreadyHalted => {}
        }
        Ok(())
    }

    /// Installs or removes the breakpoint at `addr` so that it is in the guest exactly when the
    /// sampler or the client wants it. Must be halted.
    pub(super) fn sync_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        let client = self
            .client
            .as_ref()
            .and_then(|c| c.breakpoints.get(&addr).copied());
        let wanted = self.sampler_breakpoints.contains(&addr) || client.is_some();
        let installed = self.installed.contains(&addr);
        if wanted && !installed {
            // gdb's length spares a read (and the memory mode switch for it): breakpoints are
            // at virtual pcs whatever the mode.
            if let Some(Some(len)) = client {
                self.guest()?.set_breakpoint_len(addr, len)?;
            } else {
                self.memory_mode(self.sampler_physical)?;
                self.guest()?.set_breakpoint(addr)?;
            }
            self.installed.insert(addr);
        } else if !wanted && installed {
            self.installed.remove(&addr);
            self.guest()?.remove_breakpoint(addr)?;
        }
        Ok(())
    }

    /// Switches the memory address mode if needed (physical only if the stub has it).
    pub(super) fn memory_mode(&mut self, physical: bool) -> Result<(), TargetError> {
        let physical = physical && self.sampler_physical;
        let g = self.guest()?;
        if g.physical() != physical {
            g.set_physical(physical)?;
        }
        Ok(())
    }

    /// One instruction; a breakpoint installed at pc is taken out for it.
    pub(super) fn step_guest(&mut self) -> Result<StopReason, TargetError> {
        self.trapped_at = None;
        let pc = self.registers()?.pc();
        let at_breakpoint = self.installed.contains(&pc);
        self.moved();
        let g = self.guest()?;
        if !at_breakpoint {
            return g.step();
        }
        g.remove_breakpoint(pc)?;
        let stepped = g.step();
        let back = g.set_breakpoint(pc);
        let reason = stepped?;
        back?;
        Ok(reason)
    }

    /// Lets the guest go on when nobody holds it: carries out a client's step, or resumes
    /// (stepping over the breakpoint it stopped at first).
    pub(super) fn settle(&mut self) -> Result<(), TargetError> {
        if self.guest.is_none()
            || self.sampler_hold
            || self.sampler_reading > 0
            || self.sampler_pending.is_some()
        {
            return Ok(());
        }
        let run = self.client.as_ref().map(|c| c.run);
        if run == Some(Run::Held) || !self.guest()?.is_halted() {
            return Ok(());
        }
        if run == Some(Run::Step) {
            let reason = self.step_guest()?;
            let stop = match reason {
                StopReason::Signal(n) if n != 5 => ClientStop::Signal(n),
                _ => ClientStop::Step,
            };
            self.client_mut()?.stop(stop);
            return Ok(());
        }
        // Stepped off a breakpoint it trapped at and that is still in place (the pc is read
        // only then: a continue after gdb took its breakpoint out costs no register read).
        if let Some(at) = self.trapped_at.filter(|at| self.installed.contains(at)) {
            if self.registers()?.pc() == at {
                self.step_guest()?;
            }
        }
        self.trapped_at = None;
        self.moved();
        // A client continued with scheduler locking keeps its other harts stopped, also when
        // the guest resumes after a sampler's read.
        let only = match &self.client {
            Some(c) if run == Some(Run::Continue) => c.only.clone(),
            _ => None,
        };
        match only {
            Some(harts) => self.guest()?.resume_harts(&harts),
            None => self.guest()?.resume(),
        }
    }

    /// The guest may have moved (or changed): what was read of it is forgotten.
    pub(super) fn moved(&mut self) {
        self.regs = None;
        self.client_reads.moved();
    }

    /// The halted guest's registers (cached until it moves).
    pub(super) fn registers(&mut self) -> Result<Registers, TargetError> {
        if let Some(r) = &self.regs {
            return Ok(r.clone());
        }
        let r = self.guest()?.read_registers()?;
        self.regs = Some(r.clone());
        Ok(r)
    }
}
