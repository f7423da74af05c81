//! The gdb helper (`.gdbinit` + `scripts/gdb/leakscope.py`) against the kernel in QEMU:
//! `alloc-dump` lists exactly the entries `inspector snapshot --json` sees, `alloc-pid N` the
//! subset owned by N, and the kernel keeps running after gdb detaches.
//!
//! Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test debugger_gdb -- --include-ignored`.

mod common;

use common::cli::{entry_rows, snapshot, Row};
use common::qemu::{kernel_elf, Qemu};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Runs gdb-multiarch in batch mode from the repository root, as `make gdb` sets it up.
fn gdb(q: &Qemu, commands: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("gdb-multiarch");
    cmd.current_dir(&root)
        .args([
            "-batch",
            "-iex",
            "set auto-load local-gdbinit off",
            "-x",
            ".gdbinit",
        ])
        .arg(kernel_elf())
        .args(["-ex", &format!("target remote 127.0.0.1:{}", q.gdb_port())]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    // Detach explicitly: gdb -batch would otherwise kill the remote target on exit.
    cmd.args(["-ex", "detach"]);
    let out = cmd.output().expect("run gdb-multiarch (make setup)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gdb failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn gdb_rows(out: &str) -> BTreeSet<Row> {
    out.lines()
        .filter(|l| l.starts_with("slot="))
        .map(|l| {
            (
                u64::from_str_radix(field(l, "pa").trim_start_matches("0x"), 16).unwrap(),
                field(l, "npages").parse().unwrap(),
                field(l, "owner").parse().unwrap(),
                field(l, "tag").to_string(),
            )
        })
        .collect()
}

fn snapshot_rows(q: &Qemu) -> BTreeSet<Row> {
    entry_rows(&snapshot(q))
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn alloc_dump_and_alloc_pid_match_the_snapshot() {
    let mut q = Qemu::boot();
    q.send_line("leak 5 60 &");
    let line = q.expect("allocated 5 pages", T);
    let pid: u64 = line
        .rsplit("leak: pid=")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));

    let pid_cmd = format!("alloc-pid {pid}");
    let out = gdb(&q, &["alloc-dump", &pid_cmd]);
    let (dump, by_pid) = out
        .split_once("== alloc_table owner=")
        .unwrap_or_else(|| panic!("no alloc-pid output in:\n{out}"));
    let all = gdb_rows(dump);
    let mine = gdb_rows(by_pid);
    assert!(
        dump.contains(&format!("== alloc_table: {} used ==", all.len())),
        "{out}"
    );
    // The snapshot after gdb's session: .gdbinit keeps gdb from switching QEMU's stub into
    // multiprocess mode, which would make the inspector's plain `D` fail (guest left halted).
    // The guest is idle between the two reads (the leak holds its pages).
    let snap = snapshot_rows(&q);
    assert_eq!(all, snap, "gdb alloc-dump and inspector snapshot disagree");
    let expected: BTreeSet<Row> = snap.iter().filter(|r| r.2 == pid).cloned().collect();
    assert_eq!(mine, expected);
    assert!(
        mine.iter().any(|r| r.3 == "alloc_pages"),
        "the leak's own pages: {mine:?}"
    );

    // gdb detached: the kernel runs on.
    let mem = q.run("mem", T);
    assert!(mem.contains("pages total="), "{mem}");
}
