//! Running the `inspector` binary against a test QEMU, and reading its `snapshot --json`.

use super::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

/// The `allocs` program's output as rows, without the entries of the `allocs` process itself
/// (which exist only while it prints).
pub fn allocs_rows(dump: &str) -> BTreeSet<Row> {
    let field = |line: &str, key: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_string()
    };
    let allocs_pid: u64 = dump
        .lines()
        .find(|l| l.starts_with("allocs: pid="))
        .map(|l| field(l, "pid").parse().unwrap())
        .unwrap_or_else(|| panic!("no `allocs: pid=` line in {dump}"));
    dump.lines()
        .filter(|l| l.starts_with("PA=0x"))
        .map(|l| {
            (
                u64::from_str_radix(field(l, "PA").trim_start_matches("0x"), 16).unwrap(),
                field(l, "npages").parse().unwrap(),
                field(l, "owner").parse().unwrap(),
                field(l, "tag"),
            )
        })
        .filter(|r: &Row| r.2 != allocs_pid)
        .collect()
}

/// Waits up to `limit` for `child` to exit: its status, or None once the limit passed (it is
/// then killed by its pid and reaped).
pub fn wait_bounded(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `make dump GDB_PORT=port DUMP=core` in the workspace (QEMU's memory to `core` through the
/// stub, or the inspector's gdb server on the next port); panics with make's output if no
/// dump came of it.
pub fn make_dump(port: u16, core: &std::path::Path) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&root)
        .arg("dump")
        .arg(format!("GDB_PORT={port}"))
        .arg(format!("DUMP={}", core.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && core.exists(),
        "make dump: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lines `out` gives, as a thread reads them; the channel closes at its end.
pub fn lines_of(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// How long a debugger command may take to arm its breakpoint, and to close its stdout after
/// it exits.
const ARMED: Duration = Duration::from_secs(30);

/// Starts an inspector debugger command and waits until it says its breakpoint is armed.
/// Returns the child and a receiver of its stdout lines.
pub fn start_armed(
    args: &[&str],
) -> (
    Child,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (armed_tx, armed_rx) = mpsc::channel();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("; waiting") {
                let _ = armed_tx.send(());
            }
            all.push_str(&line);
            line.clear();
        }
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        all + &rest
    });
    if armed_rx.recv_timeout(ARMED).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the breakpoint was not armed in time; stderr:\n{}",
            err_reader.join().unwrap()
        );
    }
    (child, rx, err_reader)
}

/// Waits for the child to exit (killing it after `timeout`) and returns its stdout lines as
/// JSON.
pub fn finish(
    mut child: Child,
    rx: mpsc::Receiver<String>,
    err: std::thread::JoinHandle<String>,
    timeout: Duration,
) -> Vec<Value> {
    let Some(status) = wait_bounded(&mut child, timeout) else {
        panic!(
            "the debugger command did not finish in {timeout:?}; stderr:\n{}",
            err.join().unwrap()
        );
    };
    let stderr = err.join().unwrap();
    assert!(status.success(), "failed ({status}): {stderr}");
    // Every line: the reader thread ends (and drops its sender) at the end of stdout, which
    // may come a little after the exit.
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(ARMED) {
        lines.push(l);
    }
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
