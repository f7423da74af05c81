//! `inspector`: the command line. Parses the arguments and hands each command to its file
//! under `cli/`, which owns its usage and behaviour; errors print as one line with the next
//! step and exit 1.

use clap::{Parser, Subcommand};
use inspector::cli;

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

#[derive(Subcommand)]
enum Command {
    /// Take one snapshot of the tracker, print it, and leave the kernel running.
    Snapshot(cli::snapshot::SnapshotArgs),
    /// Print one line per tracker event (allocs, frees, exit reclaims) as they happen.
    Watch(cli::watch::WatchArgs),
    /// The live terminal UI.
    Tui(cli::tui::TuiArgs),
    /// Stop at a kernel function or source line, print each hit's decoded arguments, and leave
    /// the kernel running (breakpoints removed) after COUNT hits or the timeout.
    Break(cli::breakpoint::BreakArgs),
    /// Break at a function, then step through it line by line, printing each visited line;
    /// ends when the function returns or after LINES lines, leaving the kernel running.
    Step(cli::step::StepArgs),
    /// Observe the kernel (one snapshot, or --duration) and exit 0 if nothing is wrong, 1 with
    /// findings (leaks, dead owners, invalid frees, failed allocs, a full table, a stuck
    /// tracker), 2 if it could not check.
    Check(cli::check::CheckArgs),
    /// Keep a session of the tracker in one file (keyframes, every event, the process table
    /// over time) for `snapshot --replay`, `tui --replay` and `diff`.
    Record(cli::record::RecordArgs),
    /// Pages gained and lost per PID and per tag between two snapshots (JSON files or
    /// FILE@TIME of a recording); exit 1 when B holds more tracked pages than A.
    Diff(cli::diff::DiffArgs),
}

fn main() {
    let result = match Cli::parse().command {
        Command::Snapshot(a) => cli::snapshot::run(a),
        Command::Watch(a) => cli::watch::run(a),
        Command::Tui(a) => cli::tui::run(a),
        Command::Break(a) => cli::breakpoint::run(a),
        Command::Step(a) => cli::step::run(a),
        Command::Record(a) => cli::record::run(a),
        Command::Diff(a) => match cli::diff::run(a) {
            Ok(status) => std::process::exit(status),
            Err(e) => {
                eprintln!("inspector: {e:#}");
                std::process::exit(cli::diff::EXIT_CANNOT_COMPARE);
            }
        },
        Command::Check(a) => match cli::check::run(a) {
            Ok(status) => std::process::exit(status),
            Err(e) => {
                eprintln!("inspector: {e:#}");
                std::process::exit(cli::check::EXIT_CANNOT_CHECK);
            }
        },
    };
    if let Err(e) = result {
        eprintln!("inspector: {e:#}");
        std::process::exit(1);
    }
}
