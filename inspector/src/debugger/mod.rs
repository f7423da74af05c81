//! The debugger: breakpoints on kernel functions or source lines with conditions on
//! their decoded arguments, line and instruction stepping, step-out, backtraces, and what a stop
//! shows. Works on any [`Target`]; the CLI (`break`, `step`) and the TUI's debugger view drive
//! it.
//!
//! Files: `breakpoints` (bookkeeping, installed set), `condition` (parse/evaluate),
//! `args` (formal parameters by DWARF), `stepping` (step, next, finish, run-to), `stop` (the
//! view of a stop: source, registers, backtrace, args, changed tracker rows).
//!
//! Contracts: every method that takes a target needs it halted unless it says otherwise; the
//! user's breakpoints stay installed until the user removes them or the target detaches; a
//! breakpoint whose condition is false resumes the guest without reporting a stop.

pub mod args;
pub mod breakpoints;
pub mod condition;
pub mod live;
pub mod stepping;
pub mod stop;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::dwarf::{DebugInfo, FrameRegs, FunctionParams, InlinedParams, Unwinder};
use crate::riscv::Registers;
use crate::target::{HaltGuard, ShutdownFlag, Target};

pub use args::{Arg, ArgValue, Args};
pub use breakpoints::{Breakpoint, Breakpoints, Location};
pub use condition::Condition;
pub use stepping::{CallPolicy, LineOutcome, Position, Stepper};
pub use stop::{BacktraceFrame, SourceLine, StopView};

/// The name a condition uses for the hart that stopped (`hart == 1`), unless the function
/// has an argument of that name.
pub const HART_NAME: &str = "hart";

/// A stop the user should see.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The user breakpoint at the pc, if the stop is one.
    pub breakpoint: Option<u32>,
    /// The hart that stopped, when the target says (QEMU: the thread of the stop reply).
    pub hart: Option<u32>,
    pub pc: u64,
    pub regs: Registers,
    /// The arguments of the function the pc is in.
    pub args: Args,
    /// Set when the breakpoint's condition could not be evaluated (the stop is reported).
    pub condition_error: Option<String>,
}

/// One physical frame of a backtrace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysFrame {
    pub pc: u64,
    /// The frame's sp (for callers: the CFA of the callee).
    pub sp: u64,
}

/// Debugger state for one ELF; see the module doc.
#[derive(Debug)]
pub struct Debugger {
    debug: Arc<DebugInfo>,
    pub breakpoints: Breakpoints,
    unwinder: Option<Unwinder>,
    params: HashMap<u64, Option<Arc<FunctionParams>>>,
    /// Inlined calls' parameters by pc (a unit walk each: cached).
    inlined: HashMap<u64, Arc<Vec<InlinedParams>>>,
    /// Harts whose stop at a breakpoint was reported, and where, since the guest last ran:
    /// each steps off its breakpoint before the next continue, not only the selected one.
    reported: BTreeMap<u32, u64>,
}

impl Debugger {
    /// Loads the CFI from the ELF `debug` was loaded from (no CFI: backtraces use `ra` only).
    pub fn new(debug: Arc<DebugInfo>) -> Debugger {
        let unwinder = Unwinder::load(debug.elf().path()).ok().flatten();
        Debugger {
            debug,
            breakpoints: Breakpoints::new(),
            unwinder,
            params: HashMap::new(),
            inlined: HashMap::new(),
            reported: BTreeMap::new(),
        }
    }

    /// The ELF and DWARF this debugger works from.
    pub fn debug_info(&self) -> &Arc<DebugInfo> {
        &self.debug
    }

    /// The parameters of the function whose entry is `low` (cached).
    pub fn params(&mut self, low: u64) -> Option<Arc<FunctionParams>> {
        let debug = &self.debug;
        self.params
            .entry(low)
            .or_insert_with(|| debug.function_params(low).ok().flatten().map(Arc::new))
            .clone()
    }

    /// The parameter names of the function containing `pc`.
    pub fn param_names(&mut self, pc: u64) -> Vec<String> {
        let Some(f) = self.debug.function_at(pc) else {
            return Vec::new();
        };
        self.params(f.low)
            .map(|p| p.params.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Decodes the arguments of the function the frame `regs` is in.
    pub fn args(&mut self, target: &mut dyn Target, regs: &Registers) -> Args {
        let pc = regs.pc();
        let Some(f) = self.debug.function_at(pc) else {
            return Args::default();
        };
        let Some(params) = self.params(f.low) else {
            return Args::default();
        };
        let cfa = self.unwind(target, regs, 2).get(1).map(|c| c.sp);
        args::decode_args(&self.debug, &params, target, regs, cfa)
    }

    /// The inlined calls containing `pc`, innermost first (cached).
    pub fn inlined_params(&mut self, pc: u64) -> Arc<Vec<InlinedParams>> {
        let debug = &self.debug;
        self.inlined
            .entry(pc)
            .or_insert_with(|| Arc::new(debug.inlined_params(pc).unwrap_or_default()))
            .clone()
    }

    /// The arguments of every inlined call the frame `regs` is in, innermost first, with the
    /// inlined function's name. Empty outside inlined code.
    pub fn inlined_args(
        &mut self,
        target: &mut dyn Target,
        regs: &Registers,
    ) -> Vec<(String, Args)> {
        let pc = regs.pc();
        let inlined = self.inlined_params(pc);
        if inlined.iter().all(|i| i.params.params.is_empty()) {
            return Vec::new();
        }
        let cfa = self.unwind(target, regs, 2).get(1).map(|c| c.sp);
        inlined
            .iter()
            .filter(|i| !i.params.params.is_empty())
            .map(|i| {
                let args = args::decode_args(&self.debug, &i.params, target, regs, cfa);
                (i.function.clone(), args)
            })
            .collect()
    }

    /// What a condition at `pc` may name: the concrete function's parameters and those of the
    /// inlined calls at `pc`.
    fn condition_names(&mut self, pc: u64) -> Vec<String> {
        let mut names = self.param_names(pc);
        for i in self.inlined_params(pc).iter() {
            for p in &i.params.params {
                if !names.contains(&p.name) {
                    names.push(p.name.clone());
                }
            }
        }
        names
    }

    /// [`break_at`](Self::break_at) on a running target: halts it for the insertion and
    /// resumes it, also on error.
    pub fn break_at_running(
        &mut self,
        target: &mut dyn Target,
        location: Location,
        condition: Option<Condition>,
    ) -> Result<u32> {
        let mut guard = HaltGuard::new(target)?;
        self.break_at(&mut *guard, location, condition)
    }

    /// Adds a breakpoint at `location` with an optional condition, checking first that the
    /// condition only names arguments of the function the breakpoint is in (or of the inlined
    /// calls at its address).
    pub fn break_at(
        &mut self,
        target: &mut dyn Target,
        location: Location,
        condition: Option<Condition>,
    ) -> Result<u32> {
        let (mut addresses, function) = Breakpoints::resolve(&self.debug, &location)?;
        if let Some(cond) = &condition {
            // As gdb does: a location where the condition cannot be evaluated (another
            // function sharing the line) is left out; none left is an error.
            let wanted = cond.names();
            let mut first_names = None;
            addresses.retain(|&a| {
                let names = self.condition_names(a);
                let ok = wanted.iter().all(|n| n == HART_NAME || names.contains(n));
                first_names.get_or_insert(names);
                ok
            });
            if addresses.is_empty() {
                let names = first_names.unwrap_or_default();
                let missing = wanted
                    .iter()
                    .find(|n| !names.contains(n))
                    .cloned()
                    .unwrap_or_default();
                bail!(
                    "`{missing}` in the condition is not an argument of {} (arguments: {})",
                    function
                        .as_deref()
                        .unwrap_or("the function at that location"),
                    if names.is_empty() {
                        "none known".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
        }
        self.breakpoints
            .add_at(target, location, addresses, function, condition)
    }

    /// Continues the guest (stepping off a breakpoint at the current pc first). A no-op if it
    /// runs already.
    ///
    /// On several harts, every hart whose breakpoint hit was reported and that still sits on it
    /// steps off it first too: after the user stepped another hart, the hart that stopped first
    /// would otherwise trap again at once. A hart merely halted on a breakpoint's address
    /// (its hit not reported yet) is left to hit it.
    pub fn resume(&mut self, target: &mut dyn Target) -> Result<()> {
        let reported = std::mem::take(&mut self.reported);
        if target.is_halted() {
            let selected = target.selected_hart();
            let others: Vec<_> = reported
                .into_iter()
                .filter(|&(h, _)| Some(h) != selected)
                .collect();
            for &(hart, at) in &others {
                target.select_hart(hart)?;
                if target.read_registers()?.pc() == at {
                    self.breakpoints.step_over_installed(target, at)?;
                }
            }
            if let Some(hart) = selected.filter(|_| !others.is_empty()) {
                target.select_hart(hart)?;
            }
            let pc = target.read_registers()?.pc();
            self.breakpoints.step_over_installed(target, pc)?;
            target.resume()?;
        }
        Ok(())
    }

    /// Judges the stop the halted target is at: `Some(hit)` if the user should see it (a user
    /// breakpoint whose condition holds or cannot be evaluated, or a stop at no breakpoint),
    /// `None` if a condition is false. Counts the hit.
    pub fn evaluate_stop(&mut self, target: &mut dyn Target) -> Result<Option<Hit>> {
        let hart = target.stopped_hart();
        let regs = target.read_registers()?;
        let pc = regs.pc();
        let bp = self.breakpoints.at(pc).map(|b| (b.id, b.condition.clone()));
        let args = self.args(target, &regs);
        let mut condition_error = None;
        if let Some((_, Some(cond))) = &bp {
            // Inside inlined code the inlined calls' arguments count too (innermost first:
            // they shadow the outer ones of the same name).
            // `hart` (the hart that stopped) counts too, unless an argument has that name.
            let mut scope = Args::default();
            if cond.names().iter().any(|n| args.get(n).is_none()) {
                for (_, a) in self.inlined_args(target, &regs) {
                    scope.0.extend(a.0);
                }
            }
            scope.0.extend(args.0.iter().cloned());
            if let Some(h) = hart {
                scope.0.push(Arg {
                    name: HART_NAME.to_string(),
                    type_name: "u32".to_string(),
                    value: ArgValue::UInt(h.into()),
                    decoded: None,
                });
            }
            match cond.eval(&scope) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => condition_error = Some(format!("condition `{cond}`: {e}")),
            }
        }
        if let Some((id, _)) = bp {
            self.breakpoints.record_hit(id);
            if let Some(h) = hart {
                self.reported.insert(h, pc);
            }
        }
        Ok(Some(Hit {
            breakpoint: bp.map(|b| b.0),
            hart,
            pc,
            regs,
            args,
            condition_error,
        }))
    }

    /// Resumes the guest and waits up to `timeout` for a stop the user should see (see
    /// [`evaluate_stop`](Self::evaluate_stop)); false conditions are resumed silently.
    /// `Ok(None)` on timeout or shutdown, with the guest running.
    pub fn continue_until_hit(
        &mut self,
        target: &mut dyn Target,
        timeout: Duration,
        shutdown: Option<&ShutdownFlag>,
    ) -> Result<Option<Hit>> {
        let deadline = Instant::now() + timeout;
        self.resume(target)?;
        loop {
            if shutdown.is_some_and(|s| s.is_set()) {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let slice = left.min(Duration::from_millis(100));
            if target.wait_for_stop(slice)?.is_none() {
                continue;
            }
            match self.evaluate_stop(target)? {
                Some(hit) => return Ok(Some(hit)),
                None => self.resume(target)?,
            }
        }
    }

    /// Up to `max` physical frames: the current one first, then its callers through the CFI
    /// (at a pc without CFI, the first caller is taken from `ra`).
    pub fn unwind(&self, target: &mut dyn Target, regs: &Registers, max: usize) -> Vec<PhysFrame> {
        let mut out = vec![PhysFrame {
            pc: regs.pc(),
            sp: regs.sp(),
        }];
        let Some(unwinder) = &self.unwinder else {
            if max > 1 && regs.ra() != 0 {
                out.push(PhysFrame {
                    pc: regs.ra(),
                    sp: regs.sp(),
                });
            }
            return out;
        };
        let mut frame = FrameRegs::from_registers(regs);
        let mut read = |addr: u64, buf: &mut [u8]| target.read_memory(addr, buf).is_ok();
        while out.len() < max {
            let lookup = if out.len() == 1 {
                frame.pc
            } else {
                frame.pc.wrapping_sub(1)
            };
            let Some(u) = unwinder.unwind(&frame, lookup, &mut read) else {
                break;
            };
            let prev_sp = out.last().expect("not empty").sp;
            if u.cfa < prev_sp || (u.caller.pc == frame.pc && u.cfa == prev_sp) {
                break; // not going up the stack: corrupt or the end
            }
            out.push(PhysFrame {
                pc: u.caller.pc,
                sp: u.cfa,
            });
            frame = u.caller;
        }
        out
    }
}
