//! Execution control: instruction step, line step (into or over calls, by policy), step-out,
//! continue to the next breakpoint stop — each ending with the target halted (or, for
//! continue, running with no stop yet).
//!
//! How a line step works: single instructions until the source position changes while in the
//! current frame. A linked call (`ra` = previous pc + 2 or + 4 and pc outside the frame) is
//! either entered (policy says so: the callee becomes the current frame) or stepped over with a
//! temporary breakpoint at the return address, resumed, and accepted only when the stop has
//! the caller's sp. Leaving the frame otherwise (a return or a tail call) pops to the caller
//! frame if the step entered it, else ends with [`LineOutcome::Returned`].
//!
//! Positions are "own code": the innermost inlined frame whose file is not the Rust standard
//! library (`/rustc/…`, `…/lib/rustlib/…`) or a crates.io dependency, else the concrete
//! function's line. Temporary breakpoints are always removed before returning.
//!
//! Cancellation: every loop here (the instructions of a line step, the wait for a stepped-over
//! call or a `finish` to return) looks at a [`ShutdownFlag`] between instructions and at least
//! every [`SHUTDOWN_POLL`]; once it is raised the operation ends with [`Cancelled`], the target halted
//! and the temporary breakpoints removed, so the caller can detach at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dwarf::DebugInfo;
use crate::riscv::Registers;
use crate::target::{Cancelled, ShutdownFlag, Target, SHUTDOWN_POLL};

use super::Debugger;

/// Instructions one line step may take before it gives up ([`LineOutcome::Limit`]).
pub const MAX_INSTRUCTIONS_PER_LINE: u64 = 200_000;

/// Which calls a line step enters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPolicy {
    /// Step over every call (gdb `next`).
    Over,
    /// Enter calls into functions with line information (gdb `step`).
    Into,
    /// Enter calls only into functions defined in one of these files (matched by trailing
    /// path components); step over the rest.
    IntoFiles(Vec<String>),
}

/// A source position of a pc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    /// 0: no line.
    pub line: u32,
    /// The function of that (possibly inlined) frame.
    pub function: Option<String>,
}

/// How a line step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineOutcome {
    /// Reached a new line.
    Line { pc: u64, position: Position },
    /// The frame the stepping started in returned (or tail-called away); the target is
    /// halted in the caller.
    Returned { pc: u64 },
    /// A breakpoint or another stop while stepping over a call; the target is halted there.
    Stopped { pc: u64 },
    /// [`MAX_INSTRUCTIONS_PER_LINE`] instructions without a new line.
    Limit { pc: u64 },
}

#[derive(Clone, Debug)]
struct ActiveFrame {
    low: u64,
    high: u64,
}

/// A line-stepping session: remembers the frames it entered, so that stepping out of a callee
/// it entered continues in the caller and only the starting frame's return ends it.
#[derive(Debug)]
pub struct Stepper {
    frames: Vec<ActiveFrame>,
    last: Option<(String, u32)>,
    pub policy: CallPolicy,
    positions: HashMap<u64, Option<Position>>,
    /// How long to wait for a stepped-over call to return.
    pub call_timeout: Duration,
    /// Raised: the step ends with [`Cancelled`] (see the module doc). Never raised by default.
    pub cancel: ShutdownFlag,
}

/// True for source files that are not the user's own code.
pub fn is_library_file(path: &str) -> bool {
    path.starts_with("/rustc/")
        || path.contains("/lib/rustlib/")
        || path.contains("/.cargo/registry/")
        || path.contains("/.cargo/git/")
}

/// True if `query`'s path components are the trailing components of `full`.
pub fn file_matches(full: &str, query: &str) -> bool {
    let comps = |p: &str| -> Vec<String> {
        std::path::Path::new(p)
            .components()
            .filter(|c| {
                !matches!(
                    c,
                    std::path::Component::CurDir | std::path::Component::RootDir
                )
            })
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    let (full, query) = (comps(full), comps(query));
    !query.is_empty() && full.ends_with(&query)
}

/// The "own code" position of `pc` (see the module doc); `None` without line information.
pub fn position(debug: &DebugInfo, pc: u64) -> Option<Position> {
    position_with(debug, pc, &|f: &str| !is_library_file(f))
}

/// The position of `pc` as a stepper with this call policy sees it: starting from the concrete
/// function, descend into inlined frames only while their code's file is one the policy would
/// enter (so an inlined helper, like an out-of-line one, shows as its call site).
pub fn position_with(
    debug: &DebugInfo,
    pc: u64,
    enters: &dyn Fn(&str) -> bool,
) -> Option<Position> {
    let frames = debug.frames(pc).ok()?;
    let mut pick = frames.last()?;
    for f in frames.iter().rev().skip(1) {
        match &f.location {
            Some(l) if l.line != 0 && enters(&l.file) => pick = f,
            _ => break,
        }
    }
    let loc = pick.location.as_ref()?;
    Some(Position {
        file: loc.file.clone(),
        line: loc.line,
        function: pick.function.clone(),
    })
}

impl CallPolicy {
    /// True if a step with this policy enters code from `file`.
    pub fn enters_file(&self, file: &str) -> bool {
        match self {
            CallPolicy::Over => false,
            CallPolicy::Into => !is_library_file(file),
            CallPolicy::IntoFiles(files) => files.iter().any(|q| file_matches(file, q)),
        }
    }
}

/// Executes one instruction; returns the new registers. Steps off a breakpoint installed at the
/// current pc without stopping on it again.
pub fn step_instruction(dbg: &mut Debugger, target: &mut dyn Target) -> Result<Registers> {
    let pc = target.read_registers()?.pc();
    if !dbg.breakpoints.step_over_installed(target, pc)? {
        target.step().context("single-stepping")?;
    }
    Ok(target.read_registers()?)
}

impl Stepper {
    /// Starts a stepping session in the frame of the current pc.
    pub fn new(dbg: &Debugger, target: &mut dyn Target, policy: CallPolicy) -> Result<Stepper> {
        let regs = target.read_registers()?;
        let pc = regs.pc();
        let f = dbg
            .debug_info()
            .function_at(pc)
            .with_context(|| format!("no function contains pc {pc:#x}: cannot line-step"))?;
        let mut s = Stepper {
            frames: vec![ActiveFrame {
                low: f.low,
                high: f.high,
            }],
            last: None,
            policy,
            positions: HashMap::new(),
            call_timeout: Duration::from_secs(10),
            cancel: ShutdownFlag::new(),
        };
        s.last = s.pos(dbg.debug_info(), pc).map(|p| (p.file, p.line));
        Ok(s)
    }

    fn pos(&mut self, debug: &DebugInfo, pc: u64) -> Option<Position> {
        let policy = &self.policy;
        self.positions
            .entry(pc)
            .or_insert_with(|| position_with(debug, pc, &|f: &str| policy.enters_file(f)))
            .clone()
    }

    fn enters(&self, debug: &DebugInfo, callee: u64) -> bool {
        debug
            .user_location(callee)
            .is_some_and(|l| self.policy.enters_file(&l.file))
    }

    /// The position of `pc` as this stepper shows it (see [`position_with`]).
    pub fn position(&mut self, debug: &DebugInfo, pc: u64) -> Option<Position> {
        self.pos(debug, pc)
    }

    /// Steps until the source line changes (see the module doc). [`Cancelled`] (halted) when
    /// the cancel flag is raised.
    pub fn next_line(
        &mut self,
        dbg: &mut Debugger,
        target: &mut dyn Target,
    ) -> Result<LineOutcome> {
        let debug = dbg.debug_info().clone();
        let mut regs = target.read_registers()?;
        for _ in 0..MAX_INSTRUCTIONS_PER_LINE {
            self.cancel.check()?;
            let prev_pc = regs.pc();
            regs = step_instruction(dbg, target)?;
            let pc = regs.pc();
            let top = self.frames.last().expect("never empty").clone();
            if pc < top.low || pc >= top.high {
                let linked = regs.ra() == prev_pc + 2 || regs.ra() == prev_pc + 4;
                if linked && pc != regs.ra() {
                    // A call.
                    if self.enters(&debug, pc) {
                        if let Some(f) = debug.function_at(pc) {
                            self.frames.push(ActiveFrame {
                                low: f.low,
                                high: f.high,
                            });
                            continue;
                        }
                    }
                    match self.finish_call(dbg, target, regs.ra(), regs.sp())? {
                        Some(stopped) => return Ok(LineOutcome::Stopped { pc: stopped }),
                        None => {
                            regs = target.read_registers()?;
                            continue;
                        }
                    }
                }
                // Left the frame: back into a frame this session entered, or out of the start.
                if self.frames.len() > 1 {
                    self.frames.pop();
                    let parent = self.frames.last().expect("not empty");
                    if pc >= parent.low && pc < parent.high {
                        // Mid-line in the caller: keep going until its line changes.
                        self.last = self.pos(&debug, pc).map(|p| (p.file, p.line));
                        continue;
                    }
                }
                self.frames.truncate(1);
                return Ok(LineOutcome::Returned { pc });
            }
            let Some(p) = self.pos(&debug, pc) else {
                continue;
            };
            if p.line == 0 {
                continue;
            }
            let key = (p.file.clone(), p.line);
            if self.last.as_ref() != Some(&key) {
                self.last = Some(key);
                return Ok(LineOutcome::Line { pc, position: p });
            }
        }
        Ok(LineOutcome::Limit { pc: regs.pc() })
    }

    /// Runs a called function to its return address `ra` (the caller's `sp` unchanged).
    /// Returns `Some(pc)` if the guest stopped elsewhere first (a user breakpoint).
    fn finish_call(
        &mut self,
        dbg: &mut Debugger,
        target: &mut dyn Target,
        ra: u64,
        sp: u64,
    ) -> Result<Option<u64>> {
        run_to(dbg, target, ra, sp, self.call_timeout, &self.cancel)
    }
}

/// Resumes until pc == `addr` with sp == `sp` (a temporary breakpoint at `addr`; stops there
/// with another sp — recursion, another context — are resumed). Returns `Some(pc)` if the
/// guest stopped elsewhere (the target is halted there), `None` when it arrived; [`Cancelled`]
/// (halted) when `cancel` is raised while waiting. The temporary breakpoint is removed on every
/// path.
pub fn run_to(
    dbg: &mut Debugger,
    target: &mut dyn Target,
    addr: u64,
    sp: u64,
    timeout: Duration,
    cancel: &ShutdownFlag,
) -> Result<Option<u64>> {
    dbg.breakpoints.add_temporary(target, addr)?;
    let result = (|| -> Result<Option<u64>> {
        let deadline = Instant::now() + timeout;
        loop {
            cancel.check()?;
            dbg.resume(target)?;
            // Wait in slices, so a raised flag is seen within SHUTDOWN_POLL.
            let stopped = loop {
                if cancel.is_set() {
                    target.halt()?;
                    return Err(Cancelled.into());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break false;
                }
                if target.wait_for_stop(left.min(SHUTDOWN_POLL))?.is_some() {
                    break true;
                }
            };
            if !stopped {
                target.halt()?;
                bail!(
                    "the call did not return to {addr:#x} within {} s; the guest is halted",
                    timeout.as_secs()
                );
            }
            let regs = target.read_registers()?;
            let pc = regs.pc();
            if pc == addr && regs.sp() == sp {
                return Ok(None);
            }
            if pc == addr {
                // Our temporary breakpoint reached in another frame: go on.
                continue;
            }
            // A user breakpoint whose condition is false is passed silently.
            if dbg.breakpoints.at(pc).is_some() && dbg.evaluate_stop(target)?.is_none() {
                continue;
            }
            return Ok(Some(pc));
        }
    })();
    let removed = dbg.breakpoints.remove_temporary(target, addr);
    let r = result?;
    removed?;
    Ok(r)
}

/// Runs until the current function returns to its caller (gdb `finish`): the return address
/// and the caller's sp from the CFI (or `ra` and the current sp at a leaf's entry). Returns
/// `Some(pc)` if the guest stopped elsewhere first; [`Cancelled`] (halted) when `cancel` is
/// raised while waiting.
pub fn step_out(
    dbg: &mut Debugger,
    target: &mut dyn Target,
    timeout: Duration,
    cancel: &ShutdownFlag,
) -> Result<Option<u64>> {
    let regs = target.read_registers()?;
    let frames = dbg.unwind(target, &regs, 2);
    let (ra, caller_sp) = match frames.get(1) {
        Some(caller) => (caller.pc, caller.sp),
        None => (regs.ra(), regs.sp()),
    };
    if ra == 0 {
        bail!("cannot tell where this function returns to (no CFI and no ra)");
    }
    run_to(dbg, target, ra, caller_sp, timeout, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_files() {
        assert!(is_library_file("/rustc/abc/library/core/src/iter/range.rs"));
        assert!(is_library_file(
            "/root/.rustup/toolchains/x/lib/rustlib/src/rust/library/core/src/fmt/mod.rs"
        ));
        assert!(is_library_file(
            "/root/.cargo/registry/src/index.crates.io-1/gimli-0.34.0/src/lib.rs"
        ));
        assert!(!is_library_file("/work/main/kernel/src/mm/tracker.rs"));
    }

    #[test]
    fn file_matching_by_components() {
        let full = "/work/main/kernel/src/mm/tracker.rs";
        assert!(file_matches(full, "tracker.rs"));
        assert!(file_matches(full, "mm/tracker.rs"));
        assert!(file_matches(full, "kernel/src/mm/tracker.rs"));
        assert!(!file_matches(full, "racker.rs"));
        assert!(!file_matches(full, "tracker/src/lib.rs"));
    }
}
