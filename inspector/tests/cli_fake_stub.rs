//! The `inspector snapshot` and `watch` commands end to end, without QEMU: a fake GDB stub built
//! with the `gdbstub` crate serves the Rust tracker fixture's memory. Checks the JSON contract,
//! that the guest runs afterwards (detach), that `watch` reports events as they happen, and the
//! one-line errors for a wrong ELF and a refused connection.

mod common;

use common::fake_stub::{FakeStub, FakeStubConfig};
use inspector::dwarf::DebugInfo;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_inspector");

struct Setup {
    _dir: tempfile::TempDir,
    elf: std::path::PathBuf,
    info: DebugInfo,
    stub: FakeStub,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object(dir.path());
    let info = DebugInfo::load(&elf).unwrap();
    let regions = common::fixtures::memory_regions(&info);
    let stub = FakeStub::spawn(FakeStubConfig {
        regions,
        ..FakeStubConfig::default()
    });
    Setup {
        _dir: dir,
        elf,
        info,
        stub,
    }
}

fn header_field(info: &DebugInfo, name: &str) -> u64 {
    let g = info.global("alloc_tracker").unwrap();
    g.address
        + info
            .struct_layout(g.ty)
            .unwrap()
            .require(name)
            .unwrap()
            .offset
}

#[test]
fn snapshot_json_against_fake_stub() {
    let mut s = setup();
    let out = Command::new(BIN)
        .args(["snapshot", "--json", "--elf"])
        .arg(&s.elf)
        .args(["--gdb", &s.stub.addr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["capacity"], 8192);
    assert_eq!(v["count"], 3);
    assert_eq!(v["generation"], 42);
    assert!(v["pause_us"].as_u64().is_some());
    let entries: Vec<(u64, u64, u64, String)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["slot"].as_u64().unwrap(),
                e["pa"].as_u64().unwrap(),
                e["owner"].as_u64().unwrap(),
                e["tag"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (0, 0x8020_0000, 0, "kernel_heap".into()),
            (1, 0x8053_7000, 3, "alloc_pages".into()),
            (3, 0x8100_0000, 7, "user_stack".into())
        ]
    );
    let pid7 = v["pids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 7)
        .unwrap();
    assert_eq!(
        (pid7["allocs"].as_u64(), pid7["pages"].as_u64()),
        (Some(1), Some(16))
    );
    let ended = s.stub.wait_end();
    assert!(
        s.stub.shared().running,
        "the guest must run after `snapshot` ({ended})"
    );
}

#[test]
fn watch_prints_events_as_they_happen() {
    let mut s = setup();
    // Pretend the kernel already wrote two events (the fixture's ring has seq 0 and 1).
    s.stub
        .poke(header_field(&s.info, "event_head"), &2u64.to_le_bytes());
    let child = Command::new(BIN)
        .args([
            "watch",
            "--json-lines",
            "--interval",
            "50ms",
            "--duration",
            "1500ms",
            "--elf",
        ])
        .arg(&s.elf)
        .args(["--gdb", &s.stub.addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // A free event (seq 2) appears while watch runs: ring record 2, then head and generation.
    let ring = s.info.global("alloc_events").unwrap();
    let layout = s.info.array_layout(ring.ty).unwrap();
    let rec = s.info.struct_layout(layout.element).unwrap();
    let at = layout.element_address(ring.address, 2);
    for (name, v) in [
        ("seq", 2u64),
        ("owner", 5),
        ("pa", 0x8060_0000),
        ("npages", 3),
    ] {
        s.stub
            .poke(at + rec.require(name).unwrap().offset, &v.to_le_bytes());
    }
    s.stub.poke(
        at + rec.require("kind").unwrap().offset,
        &3u32.to_le_bytes(),
    ); // ExitReclaim
    s.stub
        .poke(header_field(&s.info, "event_head"), &3u64.to_le_bytes());
    s.stub
        .poke(header_field(&s.info, "generation"), &44u64.to_le_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs, [0, 1, 2], "each event once, in order: {lines:?}");
    let reclaim = lines.iter().find(|l| l["seq"] == 2).unwrap();
    assert_eq!(
        (
            reclaim["kind"].as_str(),
            reclaim["owner"].as_u64(),
            reclaim["npages"].as_u64()
        ),
        (Some("exit_reclaim"), Some(5), Some(3))
    );
    let last = lines.last().unwrap();
    let share = last["running_share"]
        .as_f64()
        .expect("final running-share line");
    assert!(share > 0.0 && share <= 1.0, "{last}");
    s.stub.wait_end();
    assert!(s.stub.shared().running, "the guest must run after `watch`");
}

#[test]
fn refused_connection_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object(dir.path());
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["snapshot", "--elf"])
        .arg(&elf)
        .args(["--gdb", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("inspector: cannot attach to the GDB stub"),
        "{err}"
    );
    assert!(
        err.contains("make qemu"),
        "the error names the next step: {err}"
    );
}

#[test]
fn elf_without_tracker_or_dwarf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("notes.txt");
    std::fs::write(&not_elf, "hello").unwrap();
    // The test binary itself: an ELF, but without `alloc_table`.
    for (elf, want) in [
        (not_elf.as_path(), "not an ELF"),
        (std::path::Path::new(BIN), "alloc_table"),
    ] {
        let out = Command::new(BIN)
            .args(["snapshot", "--elf"])
            .arg(elf)
            .args(["--gdb", "127.0.0.1:1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn a_different_build_in_guest_memory_is_refused_and_left_running() {
    let mut s = setup();
    // The guest runs another build: its stamp differs from the ELF's in one byte.
    let stamp = s.info.global("leakscope_build_id").unwrap().address;
    s.stub.poke(stamp, b"X");
    let out = Command::new(BIN)
        .args(["snapshot", "--json", "--elf"])
        .arg(&s.elf)
        .args(["--gdb", &s.stub.addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a mismatch is an error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not match the running kernel") && err.contains("make kernel"),
        "the error says what to do: {err}"
    );
    assert!(out.stdout.is_empty(), "no snapshot of another build");
    s.stub.wait_end();
    assert!(
        s.stub.shared().running,
        "the guest must run after the refusal"
    );
}

/// Runs `inspector check --json ARGS…` against the stub; (exit status, JSON report).
fn check(s: &Setup, args: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(BIN)
        .args(["check", "--json", "--elf"])
        .arg(&s.elf)
        .args(["--gdb", &s.stub.addr])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v, stderr)
}

#[test]
fn check_finds_the_dead_owner_and_exits_1() {
    // The fixture's pid 7 owns a user stack but has no process record.
    let mut s = setup();
    let (code, v, err) = check(&s, &[]);
    assert_eq!(code, Some(1), "findings exit 1: {err}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["snapshots"], 1, "default: one snapshot");
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{v}");
    let f = &findings[0];
    assert_eq!(
        (f["kind"].as_str(), f["pid"].as_u64(), f["pages"].as_u64()),
        (Some("dead-owner"), Some(7), Some(16))
    );
    assert_eq!(f["tags"][0], "user_stack:16");
    s.stub.wait_end();
    assert!(s.stub.shared().running, "the guest must run after `check`");
}

#[test]
fn check_reports_a_tracker_stuck_mid_change() {
    let mut s = setup();
    s.stub
        .poke(header_field(&s.info, "generation"), &43u64.to_le_bytes());
    let (code, v, err) = check(&s, &["--stuck-after", "300ms"]);
    assert_eq!(code, Some(1), "{err}");
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["stuck"], "{v}");
    s.stub.wait_end();
    assert!(s.stub.shared().running, "the guest must run after `check`");
}

#[test]
fn check_that_cannot_attach_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["check", "--elf"])
        .arg(&elf)
        .args(["--gdb", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "could not check: exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot attach"), "{err}");
}
