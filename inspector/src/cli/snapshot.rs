//! `inspector snapshot`: one snapshot of the tracker, printed, the kernel left running.
//!
//! ```text
//! inspector snapshot --elf build/kernel.elf --gdb 127.0.0.1:1234          # text
//! inspector snapshot --json | jq '.pids[] | select(.pages > 100)'         # JSON
//! ```
//!
//! Text: a header line, the per-PID summary, then one line per live allocation. JSON: see
//! [`render`](super::render) for the fields.
//!
//! A kernel still booting is waited for (up to 10 s, the guest running meanwhile). SIGINT,
//! SIGTERM or SIGHUP end the wait: the kernel is left running and the command fails.
//!
//! Without a live kernel, the same output from a recording (`inspector record`) at a moment,
//! or from a memory dump of a stopped or crashed kernel (QEMU's `dump-guest-memory`, `make
//! dump`, or a copy of its RAM file):
//!
//! ```text
//! inspector snapshot --replay churn.lsrec --at 1m20s --json
//! inspector snapshot --replay churn.lsrec --at end
//! inspector snapshot --core build/guest.core --elf build/kernel.elf
//! ```

use super::{render, Conn};
use crate::model::Snapshot;
use crate::source::{CoreSource, Source};
use crate::target::install_ctrlc_handler;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show the tracker as a recording (`inspector record`) holds it, at --at.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["gdb", "ram", "core"])]
    pub replay: Option<PathBuf>,
    /// With --replay: the moment, as time from the recording's start (3s, 1m20s) or `end`.
    #[arg(long, value_name = "TIME|end", requires = "replay", default_value = "end",
          value_parser = super::record::parse_at)]
    pub at: super::record::At,
    /// Read a memory dump instead of a live kernel: QEMU's dump-guest-memory ELF (make dump)
    /// or a copy of its RAM file (RAM from --ram-base at offset 0).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["gdb", "ram"])]
    pub core: Option<PathBuf>,
}

pub fn run(args: SnapshotArgs) -> Result<()> {
    let snap = match (&args.replay, &args.core) {
        (Some(rec), _) => Some(super::record::recorded_snapshot(rec, args.at)?),
        (None, Some(core)) => {
            Some(CoreSource::open(&args.conn.elf, core, args.conn.ram_base)?.sample()?)
        }
        (None, None) => None,
    };
    if let Some(snap) = snap {
        return print(&snap, args.json);
    }
    let stop = install_ctrlc_handler()?;
    let mut source = args.conn.view_source(&stop, None)?;
    source.reconnect()?;
    let snap = source.sample();
    // Detach before anything else can fail (printing to a closed pipe, say).
    source.finish()?;
    print(&snap?, args.json)
}

fn print(snap: &Snapshot, json: bool) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::snapshot_json(snap))?
        );
    } else {
        print!("{}", render::snapshot_text(snap));
    }
    Ok(())
}
