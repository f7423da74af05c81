//! `inspector step`: break at a function (or `file:line`), then step through it line by line,
//! printing each visited line with its source text; ends when the function returns, after
//! `--lines` lines or on Ctrl-C, SIGTERM or SIGHUP (also in the middle of a line step, then
//! with status 0), leaving the kernel running without breakpoints.
//!
//! ```text
//! inspector step --from free_all_tracked_for_pid --lines 30
//! inspector step --from free_proc --over --json
//! inspector step --from track_alloc --if 'owner == 7' --lines 10
//! ```
//!
//! Text: a `stopped in FUNCTION args` line, then `file:line  function | source` per line and
//! `FUNCTION returned to file:line` at the end. JSON: one object per line (`file`, `line`,
//! `function`, `text`, `pc`); the first also carries `stopped` and `args`, the last
//! `returned` when the function returned.

use super::breakpoint::{arm, BreakOpts};
use super::render::{self, StepLine};
use super::Conn;
use crate::debugger::stepping::{CallPolicy, LineOutcome, Position, Stepper};
use crate::debugger::stop::source_line;
use crate::target::{install_ctrlc_handler, Cancelled};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::Path;

#[derive(Args, Debug)]
pub struct StepArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The function (or file:line) to start from.
    #[arg(long)]
    pub from: String,
    #[command(flatten)]
    pub opts: BreakOpts,
    /// Lines to print at most (the stop itself included).
    #[arg(long, default_value_t = 30)]
    pub lines: u32,
    /// Step over every call (gdb `next`). By default, calls into the starting function's
    /// own source file and into the --into files are entered, all others stepped over.
    #[arg(long)]
    pub over: bool,
    /// Enter calls into functions defined in this file (trailing path match); repeatable.
    /// The default is the tracker crate, where the exit sweep's loop lives, so printing
    /// and page-freeing helpers are stepped over.
    #[arg(long, default_values = ["tracker/src/lib.rs"])]
    pub into: Vec<String>,
}

/// The visited line at `pc` (`position` None: no line information there).
fn step_line(position: Option<&Position>, pc: u64) -> StepLine {
    match position {
        Some(p) => StepLine {
            file: Some(p.file.clone()),
            line: Some(p.line),
            function: p.function.clone(),
            text: source_line(Path::new(&p.file), p.line).unwrap_or_default(),
            pc,
        },
        None => StepLine {
            pc,
            ..StepLine::default()
        },
    }
}

pub fn run(args: StepArgs) -> Result<()> {
    let StepArgs {
        conn,
        from,
        opts,
        lines,
        over,
        into,
    } = args;
    let json = opts.json;
    let stop = install_ctrlc_handler()?;
    let (mut session, mut dbg, id) = arm(&conn.elf, conn.gdb(), &from, &opts)?;
    let hit = loop {
        let Some(hit) = dbg.continue_until_hit(session.target(), opts.timeout, Some(&stop))? else {
            session.detach()?;
            if stop.is_set() {
                return Ok(());
            }
            bail!(
                "{from} was not reached within {}; the kernel runs on without breakpoints",
                humantime::format_duration(opts.timeout)
            );
        };
        if hit.breakpoint == Some(id) {
            break hit;
        }
    };
    // One sweep: the start breakpoint must not fire again (recursion, other processes).
    dbg.breakpoints.remove(session.target(), id)?;
    let debug = dbg.debug_info().clone();
    let policy = if over {
        CallPolicy::Over
    } else {
        let mut files = into;
        if let Some(l) = debug.user_location(hit.pc) {
            files.push(l.file);
        }
        CallPolicy::IntoFiles(files)
    };
    let mut out = std::io::stdout().lock();
    let mut stepper = Stepper::new(&dbg, session.target(), policy)?;
    stepper.cancel = stop.clone();
    let first = step_line(stepper.position(&debug, hit.pc).as_ref(), hit.pc);
    writeln!(
        out,
        "{}",
        render::step_first_line(&first, &from, &hit.args, json)
    )?;
    out.flush()?;
    let mut visited = 1;
    while visited < lines && !stop.is_set() {
        let outcome = match stepper.next_line(&mut dbg, session.target()) {
            Err(e) if Cancelled::is(&e) => break,
            other => other?,
        };
        match outcome {
            LineOutcome::Line { pc, position } => {
                writeln!(
                    out,
                    "{}",
                    render::step_line(&step_line(Some(&position), pc), json)
                )?;
                out.flush()?;
                visited += 1;
            }
            LineOutcome::Returned { pc } => {
                let to = step_line(stepper.position(&debug, pc).as_ref(), pc);
                writeln!(out, "{}", render::step_returned_line(&to, &from, json))?;
                break;
            }
            LineOutcome::Stopped { pc } => {
                eprintln!("inspector: stopped at a breakpoint at {pc:#x} while stepping");
                break;
            }
            LineOutcome::Limit { pc } => {
                eprintln!("inspector: no new line after many instructions (pc {pc:#x}); stopping");
                break;
            }
        }
    }
    session
        .detach()
        .context("detaching (removes the breakpoints and resumes the kernel)")?;
    Ok(())
}
