//! Running the `inspector` binary against a test QEMU, and reading its `snapshot --json`.

use super::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

/// The inspector binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_inspector");

/// `inspector snapshot --json` against `q`'s gdbstub; panics with its stderr if it fails.
pub fn snapshot(q: &Qemu) -> Value {
    let out = Command::new(BIN)
        .args(["snapshot", "--json", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (pa, npages, owner, tag) of one allocation.
pub type Row = (u64, u64, u64, String);

/// The entries of a `snapshot --json` object as rows.
pub fn entry_rows(v: &Value) -> BTreeSet<Row> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pa"].as_u64().unwrap(),
                e["npages"].as_u64().unwrap(),
                e["owner"].as_u64().unwrap(),
                e["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
