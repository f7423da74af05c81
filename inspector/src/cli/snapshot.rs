//! `inspector snapshot`: one snapshot of the tracker, printed, the kernel left running.
//!
//! ```text
//! inspector snapshot --elf build/kernel.elf --gdb 127.0.0.1:1234          # text
//! inspector snapshot --json | jq '.pids[] | select(.pages > 100)'         # JSON
//! inspector snapshot --by site        # pages and allocations per call site (/proc/allocinfo)
//! inspector snapshot --by tag --json  # the snapshot's JSON plus `by` and `groups`
//! ```
//!
//! Text: a header line, the per-PID summary, then one line per live allocation (with its site,
//! when the kernel records sites). With `--by site|tag|pid`: one line per group instead, pages
//! and allocations, most pages first, then the total. A site is the program's line for pages a
//! program asked for, else the kernel's line (see `sites`). JSON: see [`render`](super::render)
//! for the fields.
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
use crate::model::{GroupBy, Snapshot};
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
    /// Pages and allocations per group: `site` (the line that allocated), `tag` or `pid`.
    #[arg(long, value_name = "site|tag|pid", value_parser = parse_by)]
    pub by: Option<GroupBy>,
}

fn parse_by(s: &str) -> Result<GroupBy, String> {
    GroupBy::from_name(s).ok_or_else(|| format!("`{s}`: group by `site`, `tag` or `pid`"))
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
        return print(&snap, args.json, args.by);
    }
    let stop = install_ctrlc_handler()?;
    let mut source = args.conn.view_source(&stop, None)?;
    source.reconnect()?;
    let snap = source.sample();
    // Detach before anything else can fail (printing to a closed pipe, say).
    source.finish()?;
    print(&snap?, args.json, args.by)
}

fn print(snap: &Snapshot, json: bool, by: Option<GroupBy>) -> Result<()> {
    match (json, by) {
        (true, by) => {
            let v = match by {
                Some(by) => render::snapshot_groups_json(snap, by),
                None => render::snapshot_json(snap),
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        (false, Some(by)) => print!("{}", render::groups_text(snap, by)),
        (false, None) => print!("{}", render::snapshot_text(snap)),
    }
    Ok(())
}
