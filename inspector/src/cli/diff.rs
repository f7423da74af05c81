//! `inspector diff A B`: what changed in the tracker between two moments: pages gained and
//! lost per PID and per tag, and the allocations added and removed. Exits 1 when B holds more
//! tracked pages than A (memory grew: a CI script can gate on it), 0 otherwise, 2 when it
//! could not compare.
//!
//! ```text
//! inspector snapshot --json > before.json; …; inspector snapshot --json > after.json
//! inspector diff before.json after.json
//! inspector diff churn.lsrec@10s churn.lsrec@end --json
//! ```
//!
//! A and B are each a `snapshot --json` file, or a recording at a moment: `FILE@TIME` (`3s`,
//! `1m20s`) or `FILE@end`. Allocations are matched by (slot, pa, npages, owner): a slot
//! reused for another allocation is one removal and one addition. JSON: `{"a", "b",
//! "pages_a", "pages_b", "grew", "added": [entry…], "removed": [entry…], "by_pid": [{pid,
//! name, gained_pages, lost_pages, net_pages}], "by_tag": [{tag, …}]}`, entries as in
//! `snapshot --json` (`slot`, `pa`, `npages`, `owner`, `tag`, …).

use super::record::{parse_at, recorded_snapshot};
use super::render;
use crate::model::{diff, Entry, ProcState, Process, Snapshot, KERNEL_PID};
use crate::record::MAGIC;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// Exit status: B holds no more tracked pages than A.
pub const EXIT_SAME_OR_LESS: i32 = 0;
/// Exit status: B holds more tracked pages than A.
pub const EXIT_GREW: i32 = 1;
/// Exit status: the two could not be compared.
pub const EXIT_CANNOT_COMPARE: i32 = 2;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier moment: a `snapshot --json` file, FILE@TIME or FILE@end of a recording.
    pub a: String,
    /// The later moment, likewise.
    pub b: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the diff and returns the exit status; Err when it could not compare.
pub fn run(args: DiffArgs) -> Result<i32> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let d = diff(&a, &b);
    let name = |pid: u32| {
        b.process(pid)
            .or_else(|| a.process(pid))
            .map(|p| p.name.clone())
            .unwrap_or_else(|| if pid == KERNEL_PID { "kernel" } else { "?" }.to_string())
    };
    let report = render::DiffReport {
        a: &args.a,
        b: &args.b,
        pages_a: pages(&a),
        pages_b: pages(&b),
        by_pid: d.by_pid(name),
        by_tag: d.by_tag(),
        diff: &d,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&render::diff_json(&report))?
        );
    } else {
        print!("{}", render::diff_text(&report));
    }
    Ok(if report.pages_b > report.pages_a {
        EXIT_GREW
    } else {
        EXIT_SAME_OR_LESS
    })
}

/// Tracked pages: the sum over the entries (what both sides surely have).
fn pages(s: &Snapshot) -> u64 {
    s.entries.iter().map(|e| e.npages).sum()
}

/// A snapshot from `spec`: a JSON file, or `RECORDING@TIME|end`.
fn load(spec: &str) -> Result<Snapshot> {
    let path = Path::new(spec);
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {spec}"))?;
        if bytes.starts_with(&MAGIC) {
            bail!("{spec} is a recording: say which moment, {spec}@TIME (e.g. @30s) or {spec}@end");
        }
        return from_json(&bytes)
            .with_context(|| format!("{spec} is not the JSON of `inspector snapshot --json`"));
    }
    match spec.rsplit_once('@') {
        Some((file, at)) if Path::new(file).is_file() => {
            let at = parse_at(at).map_err(anyhow::Error::msg)?;
            recorded_snapshot(Path::new(file), at)
        }
        _ => bail!(
            "{spec}: no such file; give a `snapshot --json` file, or a recording as FILE@TIME or \
             FILE@end"
        ),
    }
}

/// The parts of `snapshot --json` a diff needs.
#[derive(Deserialize)]
struct SnapshotJson {
    entries: Vec<Entry>,
    #[serde(default)]
    pids: Vec<PidJson>,
}

#[derive(Deserialize)]
struct PidJson {
    pid: u32,
    name: String,
    state: ProcState,
}

fn from_json(bytes: &[u8]) -> Result<Snapshot> {
    let j: SnapshotJson = serde_json::from_slice(bytes)?;
    Ok(Snapshot {
        entries: Arc::new(j.entries),
        procs: j
            .pids
            .into_iter()
            .filter(|p| !matches!(p.state, ProcState::Gone | ProcState::Kernel))
            .map(|p| Process {
                pid: p.pid,
                parent: 0,
                name: p.name,
                state: p.state,
                hart: None,
            })
            .collect(),
        ..Snapshot::default()
    })
}
