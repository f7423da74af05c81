//! `inspector tui`: the live terminal UI (overview, allocations, page map, leaks, events, and
//! the debugger view), sampling the kernel every `--interval` while it runs.
//!
//! ```text
//! inspector tui --elf build/kernel.elf --gdb 127.0.0.1:1234
//! inspector tui --interval 1s
//! inspector tui --ram /dev/shm/leakscope-1234.ram                 # views from RAM, 60 Hz, no halt
//! inspector tui --ram /dev/shm/leakscope-1234.ram --gdb 127.0.0.1:1234   # … and the debugger
//! inspector tui --demo          # a simulated kernel, to try the UI without QEMU
//! inspector tui --serve 127.0.0.1:1235   # and your gdb beside it: target remote :1235
//! inspector tui --record session.lsrec                  # … and keep what it shows
//! inspector tui --replay session.lsrec    # a recording, on a timeline (space, , . [ ] g r)
//! inspector tui --core build/guest.core   # a memory dump of a stopped or crashed kernel
//! ```
//!
//! With `--serve`, gdb attaches through the inspector (`inspector::serve`); the header says
//! `held by gdb at FUNCTION FILE:LINE` while gdb holds the guest stopped, and the views keep
//! showing the tracker. Each debugger sees only the stops of its own breakpoints.
//!
//! Keys are listed in docs/user-guide.md and on the screen (`?`). `q`, SIGINT, SIGTERM and
//! SIGHUP (a closed terminal or tmux pane) all quit the same way: the terminal is restored, a
//! debugger command in progress is stopped, and the kernel is left running without the
//! inspector's breakpoints.

use super::record::{create_recorder, Tee};
use super::{Conn, ServeArg};
use crate::debugger::live::{DebugSource, Debuggable, NoDebugger};
use crate::record::DEFAULT_KEYFRAME_EVERY;
use crate::source::{CoreSource, DemoSource, RamSource, ReplaySource};
use crate::target::install_ctrlc_handler;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Time between snapshots through the stub (each halts the guest briefly).
pub const STUB_INTERVAL: Duration = Duration::from_millis(250);
/// Time between snapshots from the RAM file: 60 Hz.
pub const RAM_INTERVAL: Duration = Duration::from_micros(16_667);

#[derive(Args, Debug)]
pub struct TuiArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub serve: ServeArg,
    /// Time between snapshots, e.g. 200ms or 1s [default: 250ms through the stub, 16ms (60 Hz)
    /// from the RAM file, where a read costs the guest nothing].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// Show generated data instead of connecting (to try the UI without QEMU).
    #[arg(long)]
    pub demo: bool,
    /// Also record what is sampled to this file (see `inspector record`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["replay", "core", "demo"])]
    pub record: Option<PathBuf>,
    /// Show a recording instead of a live kernel, with a timeline to play, pause, step and seek.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["gdb", "ram", "core", "demo"])]
    pub replay: Option<PathBuf>,
    /// Show a memory dump (QEMU's dump-guest-memory ELF, or a copy of its RAM file) instead of
    /// a live kernel.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["gdb", "ram", "demo"])]
    pub core: Option<PathBuf>,
}

/// Time between snapshots of a replay (the timeline's resolution while it plays).
pub const REPLAY_INTERVAL: Duration = Duration::from_millis(100);
/// Time between reads of a memory dump (it never changes).
pub const CORE_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(args: TuiArgs) -> Result<()> {
    let stop = install_ctrlc_handler()?;
    let conn = &args.conn;
    if (args.demo || args.replay.is_some() || args.core.is_some()) && args.serve.serve.is_some() {
        anyhow::bail!("--serve needs a running kernel, not --demo, --replay or --core");
    }
    // Declared before the source: dropped after it (the sampler detaches first).
    let serve = args.serve.start(conn, true)?;
    let connect = |s: DebugSource| match &serve {
        Some(serve) => s.with_connector(serve.connector()),
        None => s,
    };
    if args.replay.is_some() || args.core.is_some() {
        let (source, interval): (Box<dyn Debuggable>, _) = match (&args.replay, &args.core) {
            (Some(rec), _) => (
                Box::new(NoDebugger(ReplaySource::open(rec)?)),
                REPLAY_INTERVAL,
            ),
            (None, Some(core)) => (
                Box::new(NoDebugger(CoreSource::open(
                    &conn.elf,
                    core,
                    conn.ram_base,
                )?)),
                CORE_INTERVAL,
            ),
            (None, None) => unreachable!("guarded above"),
        };
        return crate::tui::run_tui(source, args.interval.unwrap_or(interval), stop, None);
    }
    // The ELF, loaded once for the source and the served gdb's status line.
    let debug = match args.demo {
        true => None,
        false => Some(crate::source::load_elf(&conn.elf)?),
    };
    let source: Box<dyn Debuggable> = match (&debug, &conn.ram, &conn.gdb) {
        (None, ..) => Box::new(NoDebugger(DemoSource::new())),
        // The RAM file alone: views at no cost to the guest, no debugger.
        (Some(debug), Some(ram), None) => Box::new(NoDebugger(RamSource::with_debug(
            debug.clone(),
            ram,
            conn.ram_base,
        )?)),
        // Both: the views from RAM, the debugger through the stub.
        (Some(debug), Some(ram), Some(gdb)) => Box::new(
            connect(DebugSource::with_debug(debug.clone(), gdb.clone()))
                .with_shutdown(stop.clone())
                .with_ram(ram, conn.ram_base)?,
        ),
        // Samples, and carries out the debugger view's commands, on one connection.
        (Some(debug), None, _) => Box::new(
            connect(DebugSource::with_debug(
                debug.clone(),
                conn.gdb().to_string(),
            ))
            .with_shutdown(stop.clone()),
        ),
    };
    let source: Box<dyn Debuggable> = match &args.record {
        Some(path) => Box::new(Tee::new(
            source,
            create_recorder(path, conn, DEFAULT_KEYFRAME_EVERY)?,
            path,
        )),
        None => source,
    };
    // From what the source does, not from the options: a kernel without a generation counter
    // is read through the stub even when --ram is given.
    let interval = match args.interval {
        Some(i) => i,
        None if conn.ram.is_none() || source.capabilities().halts_guest => STUB_INTERVAL,
        None => RAM_INTERVAL,
    };
    let status = serve.as_ref().map(|s| s.status(debug.clone()));
    crate::tui::run_tui(source, interval, stop, status)
}
