//! `inspector check`: the gate for a kernel's CI. Observes the running kernel for `--duration`
//! (default: one snapshot), then prints what is wrong and exits 0 when nothing is, 1 with
//! findings, 2 when it could not check (no stub, wrong ELF, …). The kernel runs on afterwards.
//!
//! ```text
//! inspector check --elf build/kernel.elf --gdb 127.0.0.1:1234
//! inspector check --duration 30s --max-leaked-pages 16 --json    # while your tests run
//! ```
//!
//! Findings (see `model::check`): `leak` (a process exited during the period and the exit
//! sweep reclaimed pages it still owned), `dead-owner` (pages owned by a PID that is no live
//! process), `invalid-free` and `failed-alloc` (the counters rose), `table-full` (90 % of the
//! slots or more), `stuck` (the tracker stayed mid-change). Text: one line per finding, then a
//! `check:` summary line; JSON: `{"findings": [{kind, pid, name, pages, allocs, tags, detail}],
//! "ok", "snapshots", "duration_ms", "missed_events"}`.

use super::{render, Conn};
use crate::model::check::{CheckRun, Limits};
use crate::source::stayed_mid_change;
use crate::target::install_ctrlc_handler;
use anyhow::Result;
use clap::Args;
use std::time::{Duration, Instant};

/// Exit status: nothing wrong.
pub const EXIT_CLEAN: i32 = 0;
/// Exit status: findings.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit status: the kernel could not be checked.
pub const EXIT_CANNOT_CHECK: i32 = 2;

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// How long to observe, e.g. 30s (default: one snapshot).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Time between snapshots while observing.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Leaked pages tolerated over all the exits observed; above it each leak is a finding.
    #[arg(long, default_value_t = 0)]
    pub max_leaked_pages: u64,
    /// How long the tracker may stay mid-change before it counts as stuck.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub stuck_after: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the check and returns the exit status; Err only when it could not check (the caller
/// exits with [`EXIT_CANNOT_CHECK`]).
pub fn run(args: CheckArgs) -> Result<i32> {
    let stop = install_ctrlc_handler()?;
    let mut source = args.conn.view_source(&stop, None)?;
    source.reconnect()?;
    let limits = Limits {
        max_leaked_pages: args.max_leaked_pages,
        stuck_after: args.stuck_after,
    };
    let mut run = CheckRun::new();
    let start = Instant::now();
    let mut mid_change_since: Option<Instant> = None;
    loop {
        match source.sample() {
            Ok(snap) => {
                mid_change_since = None;
                run.observe(snap);
            }
            Err(e) if stayed_mid_change(&e) => {
                let since = *mid_change_since.get_or_insert_with(Instant::now);
                run.observe_mid_change(since.elapsed());
                if since.elapsed() > limits.stuck_after {
                    break; // judged: waiting longer shows nothing new
                }
            }
            Err(e) => return Err(e.context("checking the kernel")),
        }
        let done = match args.duration {
            None => run.snapshots() > 0,
            Some(d) => start.elapsed() >= d,
        };
        if done || stop.is_set() {
            break;
        }
        std::thread::sleep(if mid_change_since.is_some() {
            Duration::from_millis(20)
        } else {
            args.interval
        });
    }
    source.finish()?;
    let findings = run.findings(&limits);
    print!(
        "{}",
        render::check_report(&findings, &run, start.elapsed(), args.json)
    );
    Ok(if findings.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_FINDINGS
    })
}
