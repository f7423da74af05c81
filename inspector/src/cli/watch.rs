//! `inspector watch`: one line per tracker event (allocs, frees, exit reclaims) as they happen,
//! until Ctrl-C or `--duration`; the last line says what share of wall time the guest ran.
//!
//! ```text
//! inspector watch --summary                       # events, and a per-PID line after each batch
//! inspector watch --json-lines --duration 10s     # one JSON object per event
//! inspector watch --interval 1s
//! ```
//!
//! The first snapshot prints what the event ring still remembers from before `watch` started.

use super::{render, Conn};
use crate::source::{LiveSource, Source};
use crate::target::install_ctrlc_handler;
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Time between snapshots, e.g. 200ms or 1s.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json_lines: bool,
    /// After each batch of changes, also print a per-PID summary line.
    #[arg(long)]
    pub summary: bool,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

pub fn run(args: WatchArgs) -> Result<()> {
    let stop = install_ctrlc_handler()?;
    let mut source = LiveSource::connect(&args.conn.elf, &args.conn.gdb)?;
    let json = args.json_lines;
    let start = Instant::now();
    let mut paused_us = 0u64;
    let mut out = std::io::stdout().lock();
    let mut first = true;
    while !stop.is_set() && args.duration.is_none_or(|d| start.elapsed() < d) {
        let snap = source.sample()?;
        paused_us += snap.pause_us;
        if snap.missed_events > 0 {
            writeln!(
                out,
                "{}",
                render::missed_events_line(snap.missed_events, json)
            )?;
        }
        for e in &snap.events {
            if json {
                writeln!(out, "{}", render::event_json(e))?;
            } else {
                writeln!(out, "{}", render::event_line(e))?;
            }
        }
        if args.summary && (first || !snap.events.is_empty()) {
            if json {
                writeln!(out, "{}", render::summary_json(&snap))?;
            } else {
                writeln!(out, "{}", render::summary_line(&snap))?;
            }
        }
        out.flush()?;
        first = false;
        std::thread::sleep(args.interval);
    }
    source.finish()?;
    let wall_us = start.elapsed().as_micros() as u64;
    writeln!(
        out,
        "{}",
        render::running_share_line(paused_us, wall_us, json)
    )
    .context("writing the final line")?;
    Ok(())
}
