//! `inspector watch`: one line per tracker event (allocs, frees, exit reclaims) as they happen,
//! until Ctrl-C (or SIGTERM, SIGHUP) or `--duration`; the last line says what share of wall
//! time the guest ran. The kernel is left running, with nothing of the inspector in it.
//!
//! ```text
//! inspector watch --summary                       # events, and a per-PID line after each batch
//! inspector watch --json-lines --duration 10s     # one JSON object per event
//! inspector watch --interval 1s
//! inspector watch --serve 127.0.0.1:1235          # and your gdb: target remote :1235
//! ```
//!
//! With `--serve`, your gdb attaches through the inspector (see `inspector::serve`); while it
//! holds the guest stopped, snapshots read the held state (no new events) and never resume it;
//! when it detaches or dies, its breakpoints go and the events go on.
//!
//! The first snapshot prints what the event ring still remembers from before `watch` started.
//! A reboot seen on the same connection (the tracker's boot nonce changed) is said in a line
//! (`# the guest rebooted…`, JSON `{"rebooted": true}`) before the new boot's events.
//!
//! If the kernel goes away (QEMU exits or is killed, the stub closes the connection or stops
//! answering, the RAM file vanishes), `watch` does not reconnect: it says so on stderr
//! (`inspector: lost the kernel at the GDB stub at ADDR after N s …: the cause`, or `at the RAM
//! file FILE`) and exits with status 1, without the final line. Events of a
//! restarted kernel would start over at sequence 0; run `watch` again for them (e.g. `until
//! inspector watch; do sleep 1; done` to follow restarts).

use super::{render, Conn, ServeArg};
use crate::source::NotReady;
use crate::target::{install_ctrlc_handler, Cancelled};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub serve: ServeArg,
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
    // Declared first: dropped last, after the source has detached its breakpoints.
    let serve = args.serve.start(&args.conn, false)?;
    let mut source = args.conn.view_source(&stop, serve.as_ref())?;
    source.reconnect()?;
    let json = args.json_lines;
    let start = Instant::now();
    let mut paused_us = 0u64;
    let mut out = std::io::stdout().lock();
    let mut first = true;
    let left = |now: Instant| match args.duration {
        Some(d) => d.saturating_sub(now - start),
        None => Duration::MAX,
    };
    while !stop.is_set() && !left(Instant::now()).is_zero() {
        let snap = match source.sample() {
            Ok(s) => s,
            Err(e) if Cancelled::is(&e) => break,
            Err(e) if NotReady::find(&e).is_some() => return Err(e),
            Err(e) => {
                return Err(e.context(format!(
                    "lost the kernel at {} after {:.1} s (QEMU exited, was killed or stopped \
                     answering); watch exits: run it again once QEMU is back",
                    args.conn.view_origin(),
                    start.elapsed().as_secs_f64()
                )))
            }
        };
        paused_us += snap.pause_us;
        if snap.rebooted {
            writeln!(out, "{}", render::rebooted_line(json))?;
        }
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
        stop.sleep(args.interval.min(left(Instant::now())));
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
