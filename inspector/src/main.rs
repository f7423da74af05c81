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
    /// Stop at a kernel function or source line, print each hit's decoded arguments, and leave
    /// the kernel running (breakpoints removed) after COUNT hits or the timeout.
    Break {
        #[command(flatten)]
        conn: Conn,
        /// A function (`track_alloc`), a source line (`tracker.rs:91`) or `*ADDRESS`.
        location: String,
        #[command(flatten)]
        opts: BreakOpts,
        /// Stop after this many hits whose condition held.
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
    /// Break at a function, then step through it line by line, printing each visited line;
    /// ends when the function returns or after LINES lines, leaving the kernel running.
    Step {
        #[command(flatten)]
        conn: Conn,
        /// The function (or file:line) to start from.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        opts: BreakOpts,
        /// Lines to print at most (the stop itself included).
        #[arg(long, default_value_t = 30)]
        lines: u32,
        /// Step over every call (gdb `next`). By default, calls into the starting function's
        /// own source file and into the --into files are entered, all others stepped over.
        #[arg(long)]
        over: bool,
        /// Enter calls into functions defined in this file (trailing path match); repeatable.
        /// The default is the tracker crate, where the exit sweep's loop lives, so printing
        /// and page-freeing helpers are stepped over.
        #[arg(long, default_values = ["tracker/src/lib.rs"])]
        into: Vec<String>,
    },
}

#[derive(Args, Clone)]
struct BreakOpts {
    /// Only stop when this condition on the function's arguments holds, e.g. 'owner == 7 &&
    /// npages > 1' (operators: == != < <= > >= && || !, strings in quotes).
    #[arg(long = "if", value_name = "CONDITION")]
    condition: Option<String>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Give up (and leave the kernel running) if no hit arrives within this time.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
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
                // Samples, and carries out the debugger view's commands, on one connection.
                Box::new(inspector::debugger::live::DebugSource::new(
                    conn.elf.clone(),
                    conn.gdb.clone(),
                )?)
            };
            inspector::tui::run_tui(source, interval)
        }
        Command::Break {
            conn,
            location,
            opts,
            count,
        } => debug_cmd::break_cmd(&conn.elf, &conn.gdb, &location, &opts, count),
        Command::Step {
            conn,
            from,
            opts,
            lines,
            over,
            into,
        } => debug_cmd::step_cmd(&conn.elf, &conn.gdb, &from, &opts, lines, over, into),
    }
}

/// The `break` and `step` commands.
mod debug_cmd {
    use super::BreakOpts;
    use anyhow::{bail, Context, Result};
    use inspector::debugger::stepping::{position, CallPolicy, LineOutcome, Stepper};
    use inspector::debugger::stop::source_line;
    use inspector::debugger::{Args, Condition, Debugger, Hit, Location};
    use inspector::session::{install_ctrlc, Session};
    use inspector::target::HaltGuard;
    use serde_json::json;
    use std::io::Write;
    use std::path::Path;
    use std::time::Instant;

    /// Connects, arms the breakpoint and says so on stderr (`breakpoint N at …`).
    fn arm(
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
        let id = {
            let mut guard = HaltGuard::new(session.target())?;
            dbg.break_at(&mut *guard, location, condition)?
        };
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
            .and_then(|&a| position(dbg.debug(), a))
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

    /// (function, file, line) of a hit: the source position is the innermost frame of the
    /// kernel's own code (a line breakpoint inside inlined code reports that line); the
    /// function is the one named by a function breakpoint, else that frame's function.
    fn place(
        dbg: &Debugger,
        pc: u64,
        named: Option<&str>,
    ) -> (Option<String>, Option<String>, Option<u32>) {
        let pos = position(dbg.debug(), pc);
        let function = named
            .map(str::to_string)
            .or_else(|| pos.as_ref().and_then(|p| p.function.clone()))
            .or_else(|| dbg.debug().function_at(pc).map(|f| f.name));
        (
            function,
            pos.as_ref().map(|p| p.file.clone()),
            pos.map(|p| p.line),
        )
    }

    /// One hit as JSON; `inlined_args` (innermost first) only when the pc is in inlined code
    /// whose calls have arguments.
    fn hit_json(
        dbg: &Debugger,
        hit: &Hit,
        named: Option<&str>,
        inlined: &[(String, Args)],
    ) -> serde_json::Value {
        let (function, file, line) = place(dbg, hit.pc, named);
        let mut v = json!({
            "breakpoint": hit.breakpoint,
            "function": function,
            "file": file,
            "line": line,
            "args": hit.args.to_json(),
            "pc": hit.pc,
        });
        if !inlined.is_empty() {
            v["inlined_args"] = inlined
                .iter()
                .map(|(f, a)| json!({"function": f, "args": a.to_json()}))
                .collect();
        }
        v
    }

    pub fn break_cmd(
        elf: &Path,
        gdb: &str,
        location: &str,
        opts: &BreakOpts,
        count: u64,
    ) -> Result<()> {
        let stop = install_ctrlc()?;
        let (mut session, mut dbg, id) = arm(elf, gdb, location, opts)?;
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
            if opts.json {
                writeln!(
                    out,
                    "{}",
                    hit_json(&dbg, &hit, function.as_deref(), &inlined)
                )?;
            } else {
                let (func, file, line) = place(&dbg, hit.pc, function.as_deref());
                let inl: String = inlined
                    .iter()
                    .map(|(f, a)| format!(" | in {f}: {}", a.text()))
                    .collect();
                writeln!(
                    out,
                    "hit {hits}: {} ({}:{}) pc={:#x} {}{inl}",
                    func.as_deref().unwrap_or("??"),
                    file.as_deref().unwrap_or("??"),
                    line.unwrap_or(0),
                    hit.pc,
                    hit.args.text()
                )?;
            }
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

    fn line_json(file: &str, line: u32, function: Option<&str>, pc: u64) -> serde_json::Value {
        json!({
            "file": file,
            "line": line,
            "function": function,
            "text": source_line(Path::new(file), line).unwrap_or_default(),
            "pc": pc,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn step_cmd(
        elf: &Path,
        gdb: &str,
        from: &str,
        opts: &BreakOpts,
        lines: u32,
        over: bool,
        into: Vec<String>,
    ) -> Result<()> {
        let stop = install_ctrlc()?;
        let (mut session, mut dbg, id) = arm(elf, gdb, from, opts)?;
        let hit = loop {
            let Some(hit) = dbg.continue_until_hit(session.target(), opts.timeout, Some(&stop))?
            else {
                session.detach()?;
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
        let debug = dbg.debug().clone();
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
        let emit = |out: &mut std::io::StdoutLock, v: serde_json::Value| -> Result<()> {
            if opts.json {
                writeln!(out, "{v}")?;
            } else {
                let at = format!(
                    "{}:{}",
                    v["file"].as_str().unwrap_or("??"),
                    v["line"].as_u64().unwrap_or(0)
                );
                writeln!(
                    out,
                    "{at:<48} {:<40} | {}",
                    v["function"].as_str().unwrap_or("??"),
                    v["text"].as_str().unwrap_or("")
                )?;
            }
            out.flush()?;
            Ok(())
        };
        // The first line is where the breakpoint stopped; in JSON it also carries the
        // arguments and `"stopped"` (the location asked for).
        if !opts.json {
            writeln!(out, "stopped in {} {}", from, hit.args.text())?;
        }
        let mut stepper = Stepper::new(&dbg, session.target(), policy)?;
        let mut first = match stepper.position(&debug, hit.pc) {
            Some(p) => line_json(&p.file, p.line, p.function.as_deref(), hit.pc),
            None => json!({"file": null, "line": null, "function": null, "text": "", "pc": hit.pc}),
        };
        if opts.json {
            first["stopped"] = json!(from);
            first["args"] = hit.args.to_json();
            writeln!(out, "{first}")?;
            out.flush()?;
        } else {
            emit(&mut out, first)?;
        }
        let mut visited = 1;
        while visited < lines && !stop.is_set() {
            match stepper.next_line(&mut dbg, session.target())? {
                LineOutcome::Line { pc, position: p } => {
                    emit(
                        &mut out,
                        line_json(&p.file, p.line, p.function.as_deref(), pc),
                    )?;
                    visited += 1;
                }
                LineOutcome::Returned { pc } => {
                    let p = stepper.position(&debug, pc);
                    let mut v = match &p {
                        Some(p) => line_json(&p.file, p.line, p.function.as_deref(), pc),
                        None => {
                            json!({"file": null, "line": null, "function": null, "text": "", "pc": pc})
                        }
                    };
                    v["returned"] = json!(true);
                    if opts.json {
                        writeln!(out, "{v}")?;
                    } else {
                        writeln!(
                            out,
                            "{from} returned to {}",
                            p.map(|p| format!("{}:{}", p.file, p.line))
                                .unwrap_or_else(|| format!("{pc:#x}"))
                        )?;
                    }
                    break;
                }
                LineOutcome::Stopped { pc } => {
                    eprintln!("inspector: stopped at a breakpoint at {pc:#x} while stepping");
                    break;
                }
                LineOutcome::Limit { pc } => {
                    eprintln!(
                        "inspector: no new line after many instructions (pc {pc:#x}); stopping"
                    );
                    break;
                }
            }
        }
        session
            .detach()
            .context("detaching (removes the breakpoints and resumes the kernel)")?;
        Ok(())
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
