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

use super::{render, Conn};
use crate::target::install_ctrlc_handler;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SnapshotArgs) -> Result<()> {
    let stop = install_ctrlc_handler()?;
    let mut source = args.conn.view_source(&stop, None)?;
    source.reconnect()?;
    let snap = source.sample();
    // Detach before anything else can fail (printing to a closed pipe, say).
    source.finish()?;
    let snap = snap?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::snapshot_json(&snap))?
        );
    } else {
        print!("{}", render::snapshot_text(&snap));
    }
    Ok(())
}
