//! `inspector break`: stop at a kernel function, source line or address, print each hit's
//! decoded arguments, and leave the kernel running (breakpoints removed) after `--count` hits,
//! the timeout, or Ctrl-C, SIGTERM or SIGHUP (then it exits with status 0).
//!
//! ```text
//! inspector break track_alloc --count 3 --if 'owner == 7' --json
//! inspector break tracker.rs:91
//! inspector break '*0x80201234' --timeout 5s
//! ```
//!
//! Text: `hit N [hart H NAME(PID)]: function (file:line) pc=… name=value …`; JSON: one object
//! per hit with `breakpoint`, `hart`, `pid` and `process` (the process that hart was running,
//! when the kernel records it), `function`, `file`, `line`, `args`, `pc` (and `inlined_args`
//! in inlined code).

use super::render::{self, Place};
use super::Conn;
use crate::debugger::stepping::position;
use crate::debugger::{Condition, Debugger, Location};
use crate::model::running_on;
use crate::source::Session;
use crate::target::install_ctrlc_handler;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BreakArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A function (`track_alloc`), a source line (`tracker.rs:91`) or `*ADDRESS`.
    pub location: String,
    #[command(flatten)]
    pub opts: BreakOpts,
    /// Stop after this many hits whose condition held.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
}

/// Options shared by `break` and `step`.
#[derive(Args, Clone, Debug)]
pub struct BreakOpts {
    /// Only stop when this condition on the function's arguments holds, e.g. 'owner == 7 &&
    /// npages > 1' (operators: == != < <= > >= && || !, strings in quotes).
    #[arg(long = "if", value_name = "CONDITION")]
    pub condition: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up (and leave the kernel running) if no hit arrives within this time.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Connects, arms the breakpoint and says so on stderr (`breakpoint N at …`).
pub(super) fn arm(
    elf: &Path,
    gdb: &str,
    location: &str,
    opts: &BreakOpts,
) -> Result<(Session, Debugger, u32)> {
    let location: Location = location.parse()?;
    let condition = opts
        .condition
        .as_deref()
        .map(Condition::parse)
        .transpose()?;
    let mut session = Session::connect(elf, gdb)?;
    let mut dbg = Debugger::new(session.debug_info().clone());
    let id = dbg.break_at_running(session.target(), location, condition)?;
    let bp = dbg.breakpoints.get(id).expect("just added");
    let at = bp
        .addresses
        .iter()
        .map(|a| format!("{a:#x}"))
        .collect::<Vec<_>>()
        .join(",");
    let pos = bp
        .addresses
        .first()
        .and_then(|&a| position(dbg.debug_info(), a))
        .map(|p| format!(" ({}:{})", p.file, p.line))
        .unwrap_or_default();
    eprintln!(
        "breakpoint {id} at {} {at}{pos}{}; waiting",
        bp.function.as_deref().unwrap_or("??"),
        bp.condition
            .as_ref()
            .map(|c| format!(" if {c}"))
            .unwrap_or_default()
    );
    Ok((session, dbg, id))
}

/// Where a hit is: the source position is the innermost frame of the kernel's own code (a
/// line breakpoint inside inlined code reports that line); the function is the one named by a
/// function breakpoint, else that frame's function.
fn place(dbg: &Debugger, pc: u64, named: Option<&str>) -> Place {
    let pos = position(dbg.debug_info(), pc);
    let function = named
        .map(str::to_string)
        .or_else(|| pos.as_ref().and_then(|p| p.function.clone()))
        .or_else(|| dbg.debug_info().function_at(pc).map(|f| f.name));
    Place {
        function,
        file: pos.as_ref().map(|p| p.file.clone()),
        line: pos.map(|p| p.line),
    }
}

pub fn run(args: BreakArgs) -> Result<()> {
    let BreakArgs {
        conn,
        location,
        opts,
        count,
    } = args;
    let stop = install_ctrlc_handler()?;
    let (mut session, mut dbg, id) = arm(&conn.elf, conn.gdb(), &location, &opts)?;
    // A function breakpoint reports the function asked for; a line one its own frame's.
    let function = dbg.breakpoints.get(id).and_then(|b| match &b.location {
        Location::Function(_) => b.function.clone(),
        _ => None,
    });
    let deadline = Instant::now() + opts.timeout;
    let mut out = std::io::stdout().lock();
    let mut hits = 0;
    while hits < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(hit) = dbg.continue_until_hit(session.target(), left, Some(&stop))? else {
            break;
        };
        if hit.breakpoint != Some(id) {
            continue;
        }
        hits += 1;
        if let Some(e) = &hit.condition_error {
            eprintln!("inspector: {e}");
        }
        let inlined = dbg.inlined_args(session.target(), &hit.regs);
        let at = place(&dbg, hit.pc, function.as_deref());
        // The process on the hart that stopped; a table that cannot be read names none.
        let procs = match hit.hart {
            Some(_) => session.processes().unwrap_or_default(),
            None => Vec::new(),
        };
        let process = hit.hart.and_then(|h| running_on(&procs, h));
        let line = render::hit_line(
            &render::Hit {
                n: hits,
                breakpoint: hit.breakpoint,
                hart: hit.hart,
                process,
                place: &at,
                pc: hit.pc,
                args: &hit.args,
                inlined: &inlined,
            },
            opts.json,
        );
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    session
        .detach()
        .context("detaching (removes the breakpoints and resumes the kernel)")?;
    if hits < count && !stop.is_set() {
        bail!(
            "{hits} of {count} hits within {}; the kernel runs on without breakpoints",
            humantime::format_duration(opts.timeout)
        );
    }
    Ok(())
}
