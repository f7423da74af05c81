//! Live updates and breakpoints together: [`DebugSource`], the TUI's data source when it can
//! debug. It samples through a `source::Session` (re-established on demand) and carries out
//! debugger commands on the same connection (one thread owns both). [`Debuggable`] is what the
//! TUI asks of a source it can debug through; [`NoDebugger`] wraps any other source.
//!
//! Contracts:
//! - while the user holds the target (stopped at a breakpoint or after a step), snapshots do
//!   not resume it (they read the held state); `Continue` resumes it and live updates go on;
//! - with breakpoints armed, a sample halts the guest itself first, so a breakpoint stop that
//!   arrives at that moment is judged (condition) instead of being resumed by the sampler;
//! - nothing here sends `?` or clears breakpoints: only the user's toggle and the final detach
//!   remove them; after a reconnect the user's breakpoints are armed again;
//! - a kernel still booting (tracker not initialised) is waited for with the guest running
//!   between attempts, never halted; while the user holds it, not at all (`NotReady::Held`);
//! - long commands (a line step of up to `MAX_INSTRUCTIONS_PER_LINE` instructions, `Next` and
//!   `Finish` waiting for a call to return) end with `Cancelled` soon after the shutdown flag
//!   given to [`DebugSource::with_shutdown`] is raised, so the owner can `detach` (user and
//!   temporary breakpoints removed, guest resumed).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dwarf::DebugInfo;
use crate::model::Snapshot;
use crate::source::session::Connector;
use crate::source::session::{BOOT_RETRY, BOOT_WAIT};
use crate::source::{load_elf, Capabilities, NotReady, Origin, RamSource, Session, Source};
use crate::target::{Cancelled, HaltGuard, ShutdownFlag, StopReason};

use super::stepping::{step_instruction, step_out, CallPolicy, LineOutcome, Stepper};
use super::{Condition, Debugger, Location, StopView};

/// Lines of source shown around the current line.
pub const SOURCE_CONTEXT: u32 = 8;
/// How long `Next`/`Finish` wait for a call to return.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Splits `LOCATION [if CONDITION]` (the TUI's breakpoint prompt) into its parts.
pub fn parse_breakpoint_spec(spec: &str) -> Result<(Location, Option<Condition>)> {
    let (loc, cond) = match spec.split_once(" if ") {
        Some((loc, cond)) => (loc.trim(), Some(cond.trim())),
        None => (spec.trim(), None),
    };
    let location: Location = loc.parse()?;
    let condition = cond
        .map(|c| Condition::parse(c).map_err(|e| anyhow::anyhow!("condition `{c}`: {e}")))
        .transpose()?;
    Ok((location, condition))
}

/// What the user asks of the debugger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebugCommand {
    Continue,
    /// Line step, entering calls into own code (gdb `step`).
    Step,
    /// Line step over calls (gdb `next`).
    Next,
    /// Run to the caller (gdb `finish`).
    Finish,
    /// One instruction (gdb `stepi`).
    StepInstruction,
    /// Adds a breakpoint at `LOCATION [if CONDITION]`, or removes the one at that location.
    ToggleBreakpoint(String),
    /// Enables or disables breakpoint `id` (a disabled one stays listed, uninstalled).
    SetEnabled {
        id: u32,
        enabled: bool,
    },
    /// Removes breakpoint `id`.
    Remove(u32),
    /// Stops the running guest where it is.
    Interrupt,
    /// At a stop, shows the next hart (registers, backtrace, source); steps then step it.
    NextHart,
}

/// Whether the user holds the target.
#[derive(Clone, Debug)]
pub enum DebugState {
    Running,
    Stopped(Box<StopView>),
}

/// One user breakpoint, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakpointSummary {
    pub id: u32,
    pub location: String,
    pub enabled: bool,
    pub hits: u64,
    pub condition: Option<String>,
}

/// The debugger's state after a command or a breakpoint stop.
#[derive(Clone, Debug)]
pub struct DebugReport {
    pub state: DebugState,
    pub breakpoints: Vec<BreakpointSummary>,
    /// What happened, in words (`breakpoint 1 added at track_alloc`, `returned to free_proc`).
    pub message: Option<String>,
}

/// A snapshot source the user can also debug through (the TUI's debugger view).
pub trait Debuggable: Source {
    /// Carries out `cmd` and returns the debugger's state afterwards. Errors leave the state
    /// as it was (a step needs a held target, a location must resolve).
    fn command(&mut self, cmd: DebugCommand) -> Result<DebugReport>;

    /// The report of a breakpoint stop found by the last `sample`, once (then the TUI opens
    /// the debugger view).
    fn take_stop_report(&mut self) -> Option<DebugReport>;
}

/// Any [`Source`] that cannot debug (a demo, a recording): samples pass through, debugger
/// commands are refused with a reason.
pub struct NoDebugger<S>(pub S);

impl<S: Source> Source for NoDebugger<S> {
    fn source_root(&self) -> Option<PathBuf> {
        self.0.source_root()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    fn sample(&mut self) -> Result<Snapshot> {
        self.0.sample()
    }
    fn reconnect(&mut self) -> Result<()> {
        self.0.reconnect()
    }
    fn detach(&mut self) {
        self.0.detach()
    }
    fn replay_control(&self) -> Option<crate::source::ReplayControl> {
        self.0.replay_control()
    }
}

impl<S: Source> Debuggable for NoDebugger<S> {
    fn command(&mut self, _cmd: DebugCommand) -> Result<DebugReport> {
        bail!(
            "this data source has no debugger ({:?} data); attach to a running kernel for breakpoints",
            self.0.capabilities().origin
        )
    }
    fn take_stop_report(&mut self) -> Option<DebugReport> {
        None
    }
}

/// How long a RAM-backed sample listens for a breakpoint stop from the stub.
const STOP_POLL: Duration = Duration::from_millis(1);

/// Why a step command is refused while the guest runs.
const NOT_HELD: &str = "the guest is running: stop it first (a breakpoint, or interrupt)";

/// See the module doc.
pub struct DebugSource {
    debug: Arc<DebugInfo>,
    gdb: String,
    session: Option<Session>,
    dbg: Debugger,
    /// The view of the stop the user holds.
    held: Option<StopView>,
    /// The snapshot taken at the previous stop, for the changed rows.
    last_stop_snapshot: Option<Snapshot>,
    /// The user's breakpoints as given, to arm again after a reconnect.
    specs: Vec<(Location, Option<Condition>)>,
    pending: Option<DebugReport>,
    /// Raised on quit: long commands and waits end (see the module doc).
    shutdown: ShutdownFlag,
    /// Where the views read the tracker when it is not the stub: the RAM file (no halt; the
    /// views stay live while the user holds the guest).
    ram: Option<RamSource>,
    /// Where sessions get their target; None: a connection of their own to `gdb`.
    connector: Option<Connector>,
}

impl DebugSource {
    /// Loads the ELF now (so a wrong path fails before the TUI starts); connects lazily.
    pub fn new(elf: PathBuf, gdb: String) -> Result<DebugSource> {
        Ok(DebugSource::with_debug(load_elf(&elf)?, gdb))
    }

    /// Like [`new`](Self::new) with the ELF already loaded (shared with others that read it).
    pub fn with_debug(debug: Arc<DebugInfo>, gdb: String) -> DebugSource {
        DebugSource {
            dbg: Debugger::new(debug.clone()),
            debug,
            gdb,
            session: None,
            held: None,
            last_stop_snapshot: None,
            specs: Vec::new(),
            pending: None,
            shutdown: ShutdownFlag::new(),
            ram: None,
            connector: None,
        }
    }

    /// Long commands and waits end with [`Cancelled`] once `flag` is raised (see the module
    /// doc); the TUI raises it when it quits.
    pub fn with_shutdown(mut self, flag: ShutdownFlag) -> DebugSource {
        if let Some(s) = &mut self.session {
            s.set_shutdown(flag.clone());
        }
        self.shutdown = flag;
        self
    }

    /// Sessions take their target from `connector` (a connection shared with a gdb client)
    /// instead of connecting to the stub themselves.
    pub fn with_connector(mut self, connector: Connector) -> DebugSource {
        self.session = None;
        self.connector = Some(connector);
        self
    }

    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            self.connect()?;
        }
        Ok(self.session.as_mut().expect("connected above"))
    }

    fn connect(&mut self) -> Result<()> {
        self.session = None;
        self.held = None;
        let mut session = match &self.connector {
            Some(c) => Session::connect_through(self.debug.clone(), c)?,
            None => Session::connect_with(self.debug.clone(), &self.gdb)?,
        };
        session.set_shutdown(self.shutdown.clone());
        self.dbg = Debugger::new(self.debug.clone());
        if !self.specs.is_empty() {
            let mut guard = HaltGuard::new(session.target())?;
            for (loc, cond) in &self.specs {
                self.dbg.break_at(&mut *guard, loc.clone(), cond.clone())?;
            }
        }
        self.session = Some(session);
        Ok(())
    }

    fn report(&self, message: Option<String>) -> DebugReport {
        DebugReport {
            state: match &self.held {
                Some(v) => DebugState::Stopped(Box::new(v.clone())),
                None => DebugState::Running,
            },
            breakpoints: self
                .dbg
                .breakpoints
                .list()
                .iter()
                .map(|b| BreakpointSummary {
                    id: b.id,
                    location: b.location.to_string(),
                    enabled: b.enabled,
                    hits: b.hits,
                    condition: b.condition.as_ref().map(|c| c.to_string()),
                })
                .collect(),
            message,
        }
    }

    /// Collects the view of the held target (with the tracker rows changed since the previous
    /// stop) and holds it.
    fn hold(&mut self, breakpoint: Option<u32>) -> Result<()> {
        let session = self.session.as_mut().context("not connected")?;
        let snap = session.sample().ok();
        let view = StopView::collect(
            &mut self.dbg,
            session.target(),
            breakpoint,
            SOURCE_CONTEXT,
            self.last_stop_snapshot.as_ref(),
            snap.as_ref(),
        )?;
        if snap.is_some() {
            self.last_stop_snapshot = snap;
        }
        self.held = Some(view);
        Ok(())
    }

    fn run(&mut self, cmd: DebugCommand) -> Result<Option<String>> {
        self.session()?;
        if let DebugCommand::ToggleBreakpoint(spec) = &cmd {
            let (loc, cond) = parse_breakpoint_spec(spec)?;
            let session = self.session.as_mut().expect("connected");
            let mut guard = HaltGuard::new(session.target())?;
            let added =
                self.dbg
                    .breakpoints
                    .toggle(&mut *guard, &self.debug, loc.clone(), cond.clone())?;
            drop(guard);
            return Ok(Some(match added {
                Some(id) => {
                    self.specs.push((loc, cond));
                    format!("breakpoint {id} at {spec}")
                }
                None => {
                    self.specs.retain(|(l, _)| *l != loc);
                    format!("breakpoint at {} removed", loc)
                }
            }));
        }
        if let DebugCommand::SetEnabled { id, .. } | DebugCommand::Remove(id) = cmd {
            let location = self
                .dbg
                .breakpoints
                .get(id)
                .map(|b| b.location.clone())
                .with_context(|| format!("no breakpoint {id}"))?;
            let session = self.session.as_mut().expect("connected");
            let mut guard = HaltGuard::new(session.target())?;
            let what = if let DebugCommand::SetEnabled { enabled, .. } = cmd {
                self.dbg.breakpoints.set_enabled(&mut *guard, id, enabled)?;
                if enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            } else {
                self.dbg.breakpoints.remove(&mut *guard, id)?;
                self.specs.retain(|(l, _)| *l != location);
                "removed"
            };
            return Ok(Some(format!("breakpoint {id} at {location} {what}")));
        }
        let session = self.session.as_mut().expect("connected");
        match cmd {
            DebugCommand::Continue => {
                if self.held.take().is_none() {
                    return Ok(Some("already running".into()));
                }
                // The hart that stopped again: the resume steps it over its breakpoint first.
                let t = session.target();
                if let Some(h) = t.stopped_hart().filter(|&h| t.selected_hart() != Some(h)) {
                    t.select_hart(h)?;
                }
                self.dbg.resume(session.target())?;
                Ok(Some("continuing".into()))
            }
            DebugCommand::Interrupt => {
                if self.held.is_some() {
                    return Ok(Some("already stopped".into()));
                }
                session.target().halt()?;
                let bp = {
                    let pc = session.target().read_registers()?.pc();
                    self.dbg.breakpoints.at(pc).map(|b| b.id)
                };
                self.hold(bp)?;
                Ok(Some("interrupted".into()))
            }
            DebugCommand::Step | DebugCommand::Next => {
                if self.held.is_none() {
                    bail!(NOT_HELD);
                }
                let policy = if cmd == DebugCommand::Step {
                    CallPolicy::Into
                } else {
                    CallPolicy::Over
                };
                let mut stepper = Stepper::new(&self.dbg, session.target(), policy)?;
                stepper.call_timeout = CALL_TIMEOUT;
                stepper.cancel = self.shutdown.clone();
                let outcome = stepper.next_line(&mut self.dbg, session.target())?;
                let msg = match outcome {
                    LineOutcome::Line { .. } => None,
                    LineOutcome::Returned { .. } => Some("returned to the caller".to_string()),
                    LineOutcome::Stopped { .. } => Some("stopped at a breakpoint".to_string()),
                    LineOutcome::Limit { .. } => {
                        Some("no new line after many instructions".to_string())
                    }
                };
                let pc = session.target().read_registers()?.pc();
                let bp = self.dbg.breakpoints.at(pc).map(|b| b.id);
                self.hold(bp)?;
                Ok(msg)
            }
            DebugCommand::Finish => {
                if self.held.is_none() {
                    bail!(NOT_HELD);
                }
                let elsewhere = step_out(
                    &mut self.dbg,
                    session.target(),
                    CALL_TIMEOUT,
                    &self.shutdown,
                )?;
                let pc = session.target().read_registers()?.pc();
                let bp = self.dbg.breakpoints.at(pc).map(|b| b.id);
                self.hold(bp)?;
                Ok(elsewhere.map(|pc| format!("stopped at {pc:#x} before the function returned")))
            }
            DebugCommand::StepInstruction => {
                if self.held.is_none() {
                    bail!(NOT_HELD);
                }
                step_instruction(&mut self.dbg, session.target())?;
                self.hold(None)?;
                Ok(None)
            }
            DebugCommand::NextHart => {
                let Some((next, changed)) = self
                    .held
                    .as_ref()
                    .map(|v| (v.next_hart(), v.changed.clone()))
                else {
                    bail!(NOT_HELD);
                };
                let Some(next) = next else {
                    return Ok(Some("one hart: nothing to switch to".into()));
                };
                session.target().select_hart(next)?;
                let pc = session.target().read_registers()?.pc();
                let bp = self.dbg.breakpoints.at(pc).map(|b| b.id);
                self.hold(bp)?;
                // The same stop: the tracker rows it changed are still those of the stop.
                if let Some(v) = &mut self.held {
                    v.changed = changed;
                }
                Ok(Some(format!("showing hart {next}")))
            }
            DebugCommand::ToggleBreakpoint(_)
            | DebugCommand::SetEnabled { .. }
            | DebugCommand::Remove(_) => unreachable!("handled above"),
        }
    }

    /// Reads the views from `ram` instead of through the stub: snapshots never halt the guest,
    /// and the stub (connected on the first debugger command) serves only the debugger. The
    /// RAM source reuses the ELF this source already loaded (`ram_base` as in
    /// [`RamSource::new`]).
    /// A kernel without a generation counter cannot be read while it runs: the file is then
    /// not used and the views read through the stub (the capabilities say it halts).
    pub fn with_ram(mut self, ram: &std::path::Path, ram_base: Option<u64>) -> Result<DebugSource> {
        let ram = RamSource::with_debug(self.debug.clone(), ram, ram_base)?;
        self.ram = ram.reads_while_running().then_some(ram);
        Ok(self)
    }

    /// A snapshot from the RAM file; first, without sending anything to the stub, judges a
    /// breakpoint stop that arrived since the last call (holding the guest, or resuming it
    /// when the condition is false).
    fn sample_ram(&mut self) -> Result<Snapshot> {
        let armed = self.dbg.breakpoints.list().iter().any(|b| b.enabled);
        if let (Some(session), true, None) = (self.session.as_mut(), armed, &self.held) {
            if session
                .target()
                .wait_for_stop(STOP_POLL)?
                .is_some_and(|r| r != StopReason::AlreadyHalted)
            {
                self.judge_stop()?;
            }
        }
        self.ram.as_mut().expect("reading from RAM").sample()
    }

    /// The guest stopped (halted by us, or at a breakpoint): a stop the user should see is
    /// held and reported once (`take_stop_report`); true then. A breakpoint whose condition
    /// is false was resumed by the debugger: false.
    fn judge_stop(&mut self) -> Result<bool> {
        let session = self.session.as_mut().context("not connected")?;
        let Some(hit) = self.dbg.evaluate_stop(session.target())? else {
            return Ok(false);
        };
        self.hold(hit.breakpoint)?;
        let mut msg = hit
            .breakpoint
            .map(|id| format!("breakpoint {id} hit"))
            .unwrap_or_else(|| "stopped".into());
        if let Some(v) = self.held.as_ref().filter(|v| v.hart.is_some()) {
            let on = v.process.as_deref().unwrap_or("idle");
            msg.push_str(&format!(" on hart {} ({on})", v.hart.unwrap_or(0)));
        }
        if let Some(e) = hit.condition_error {
            msg.push_str(&format!(" ({e})"));
        }
        self.pending = Some(self.report(Some(msg)));
        Ok(true)
    }

    /// One sample (see [`Source::sample`]), connecting first if needed.
    fn sample_connected(&mut self) -> Result<Snapshot> {
        if self.ram.is_some() {
            return self.sample_ram();
        }
        self.session()?;
        let armed = self.dbg.breakpoints.list().iter().any(|b| b.enabled);
        if self.held.is_some() || !armed {
            // Held: the sampler's halt is a no-op and it leaves the guest halted (and does not
            // wait for a booting kernel). Not held: it halts and resumes the guest itself.
            return self.session.as_mut().expect("connected").sample();
        }
        let start = Instant::now();
        loop {
            // Halt first ourselves: a breakpoint stop arriving now is ours to judge.
            let session = self.session.as_mut().expect("connected");
            let reason = session.target().halt()?;
            let pc = session.target().read_registers()?.pc();
            if (reason == StopReason::Trap || self.dbg.breakpoints.at(pc).is_some())
                && self.judge_stop()?
            {
                return self.session.as_mut().expect("connected").sample();
            }
            let session = self.session.as_mut().expect("connected");
            // Halted by us: one attempt, no waiting inside (NotReady::Held while booting).
            let snap = session.sample();
            self.dbg.resume(session.target())?;
            match snap {
                Err(e) if matches!(NotReady::find(&e), Some(NotReady::Held)) => {
                    // Booting: wait with the guest running, as Session::sample would.
                    let waited = start.elapsed();
                    if waited >= BOOT_WAIT {
                        return Err(NotReady::Booting { waited }.into());
                    }
                    if self.shutdown.sleep(BOOT_RETRY) {
                        return Err(Cancelled.into());
                    }
                }
                other => return other,
            }
        }
    }

    /// True while the user holds the target.
    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

impl Source for DebugSource {
    fn source_root(&self) -> Option<PathBuf> {
        crate::sites::kernel_root(&self.debug)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Live,
            halts_guest: self.ram.is_none(),
            can_debug: true,
        }
    }

    fn sample(&mut self) -> Result<Snapshot> {
        let result = self.sample_connected();
        if result.is_err() && self.ram.is_some() {
            return result; // the RAM file's trouble; the debugger's connection is fine
        }
        if let Err(e) = &result {
            // A booting kernel is no connection problem (and the user's hold stays); anything
            // else drops the connection (detaching if it still can): the next call reconnects.
            if NotReady::find(e).is_none() {
                self.session = None;
                self.held = None;
            }
        }
        result
    }

    fn reconnect(&mut self) -> Result<()> {
        match &mut self.ram {
            Some(ram) => ram.reconnect(),
            None => self.connect(),
        }
    }

    fn detach(&mut self) {
        if let Some(ram) = &mut self.ram {
            ram.detach();
        }
        self.held = None;
        if let Some(s) = self.session.take() {
            let _ = s.detach();
        }
    }
}

impl Debuggable for DebugSource {
    fn command(&mut self, cmd: DebugCommand) -> Result<DebugReport> {
        let msg = self.run(cmd)?;
        Ok(self.report(msg))
    }

    fn take_stop_report(&mut self) -> Option<DebugReport> {
        self.pending.take()
    }
}

#[cfg(test)]
mod spec_tests {
    use super::parse_breakpoint_spec;

    #[test]
    fn breakpoint_spec_with_and_without_condition() {
        let (loc, cond) = parse_breakpoint_spec("track_alloc").unwrap();
        assert_eq!(loc.to_string(), "track_alloc");
        assert!(cond.is_none());
        let (loc, cond) =
            parse_breakpoint_spec(" tracker.rs:177 if owner == 7 && npages > 1 ").unwrap();
        assert_eq!(loc.to_string(), "tracker.rs:177");
        assert!(cond.is_some());
        let err = parse_breakpoint_spec("track_alloc if owner ==").unwrap_err();
        assert!(err.to_string().contains("condition `owner ==`"), "{err}");
    }
}
