//! `inspector tui`: the live terminal UI (overview, allocations, page map, leaks, events, and
//! the debugger view), sampling the kernel every `--interval` while it runs.
//!
//! ```text
//! inspector tui --elf build/kernel.elf --gdb 127.0.0.1:1234
//! inspector tui --interval 1s
//! inspector tui --demo          # a simulated kernel, to try the UI without QEMU
//! ```
//!
//! Keys are listed in docs/user-guide.md and on the screen (`?`). `q`, SIGINT, SIGTERM and
//! SIGHUP (a closed terminal or tmux pane) all quit the same way: the terminal is restored, a
//! debugger command in progress is stopped, and the kernel is left running without the
//! inspector's breakpoints.

use super::Conn;
use crate::debugger::live::{DebugSource, Debuggable, NoDebugger};
use crate::source::DemoSource;
use crate::target::install_ctrlc_handler;
use anyhow::Result;
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct TuiArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Time between snapshots, e.g. 200ms or 1s.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Show generated data instead of connecting (to try the UI without QEMU).
    #[arg(long)]
    pub demo: bool,
}

pub fn run(args: TuiArgs) -> Result<()> {
    let stop = install_ctrlc_handler()?;
    let source: Box<dyn Debuggable> = if args.demo {
        Box::new(NoDebugger(DemoSource::new()))
    } else {
        // Samples, and carries out the debugger view's commands, on one connection.
        Box::new(DebugSource::new(args.conn.elf, args.conn.gdb)?.with_shutdown(stop.clone()))
    };
    crate::tui::run_tui(source, args.interval, stop)
}
