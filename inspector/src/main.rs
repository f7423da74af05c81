//! `inspector`: the command line. Each command connects to a GDB stub (QEMU's gdbstub), reads
//! the kernel's tracker through the ELF's DWARF, and always leaves the guest running: the
//! session detaches on every exit path, Ctrl-C included.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use inspector::report;
use inspector::session::Session;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "inspector",
    version,
    about = "Live page-ownership view of the Leakscope kernel over QEMU's gdbstub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Conn {
    /// The running kernel's ELF, with DWARF (`make kernel` leaves it at build/kernel.elf).
    #[arg(long, default_value = "build/kernel.elf")]
    elf: PathBuf,
    /// Address of the GDB stub (QEMU's `-gdb tcp:HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:1234")]
    gdb: String,
}

#[derive(Subcommand)]
enum Command {
    /// Take one snapshot of the tracker, print it, and leave the kernel running.
    Snapshot {
        #[command(flatten)]
        conn: Conn,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print one line per tracker event (allocs, frees, exit reclaims) as they happen.
    Watch {
        #[command(flatten)]
        conn: Conn,
        /// Time between snapshots, e.g. 200ms or 1s.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json_lines: bool,
        /// After each batch of changes, also print a per-PID summary line.
        #[arg(long)]
        summary: bool,
        /// Stop after this long (default: until Ctrl-C).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// The live terminal UI.
    Tui {
        #[command(flatten)]
        conn: Conn,
        /// Time between snapshots, e.g. 200ms or 1s.
        #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Show generated data instead of connecting (to try the UI without QEMU).
        #[arg(long)]
        demo: bool,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("inspector: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Snapshot { conn, json } => {
            let mut session = Session::connect(&conn.elf, &conn.gdb)?;
            let snap = session.sample()?;
            session.detach()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report::snapshot_json(&snap))?
                );
            } else {
                print!("{}", report::snapshot_text(&snap));
            }
            Ok(())
        }
        Command::Watch {
            conn,
            interval,
            json_lines,
            summary,
            duration,
        } => watch(&conn, interval, json_lines, summary, duration),
        Command::Tui {
            conn,
            interval,
            demo,
        } => {
            let source: Box<dyn inspector::tui::SnapshotSource> = if demo {
                Box::new(inspector::tui::FakeSource::new())
            } else {
                Box::new(inspector::session::LiveSource::new(
                    conn.elf.clone(),
                    conn.gdb.clone(),
                )?)
            };
            inspector::tui::run_tui(source, interval)
        }
    }
}

/// `watch`: snapshots every `interval`, printing new events; reports the running share of wall
/// time (1 − paused/elapsed) on exit.
fn watch(
    conn: &Conn,
    interval: Duration,
    json_lines: bool,
    summary: bool,
    duration: Option<Duration>,
) -> Result<()> {
    let stop = inspector::session::install_ctrlc()?;
    let mut session = Session::connect(&conn.elf, &conn.gdb)?;
    let start = Instant::now();
    let mut paused_us = 0u64;
    let mut out = std::io::stdout().lock();
    let mut first = true;
    while !stop.is_set() && duration.is_none_or(|d| start.elapsed() < d) {
        let snap = session.sample()?;
        paused_us += snap.pause_us;
        // The first snapshot's events are history from before we attached: print them too,
        // so a watcher started late still sees what the ring remembers.
        if snap.missed_events > 0 {
            if json_lines {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "missed_events": snap.missed_events })
                )?;
            } else {
                writeln!(
                    out,
                    "# missed {} events (ring overran between snapshots)",
                    snap.missed_events
                )?;
            }
        }
        for e in &snap.events {
            if json_lines {
                writeln!(out, "{}", report::event_json(e))?;
            } else {
                writeln!(out, "{}", report::event_line(e))?;
            }
        }
        if summary && (first || !snap.events.is_empty()) {
            if json_lines {
                let pids = report::snapshot_json(&snap)["pids"].clone();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "summary": pids, "count": snap.header.count })
                )?;
            } else {
                writeln!(out, "{}", report::summary_line(&snap))?;
            }
        }
        out.flush()?;
        first = false;
        std::thread::sleep(interval);
    }
    session.detach()?;
    let wall_us = start.elapsed().as_micros().max(1) as u64;
    let share = 100.0 * (1.0 - paused_us as f64 / wall_us as f64);
    let line =
        format!("guest running {share:.2}% of wall time ({paused_us} us paused in {wall_us} us)");
    if json_lines {
        writeln!(out, "{}", serde_json::json!({ "running_share": share / 100.0, "paused_us": paused_us, "wall_us": wall_us }))
            .context("writing the final line")?;
    } else {
        writeln!(out, "# {line}")?;
    }
    Ok(())
}
