//! The commands against a stub that misbehaves, without QEMU: one that accepts and then never
//! answers, one that closes at once, and the `gdbstub`-crate fake stub closing the connection or
//! going silent in the middle of a session (while the guest is halted for a snapshot or at a
//! breakpoint, or between `watch`'s snapshots). Every command must end on its own with status 1
//! and one clear line on stderr: never hang, never succeed silently.
//!
//! Run: `cargo test -p inspector --test cli_faults`.

mod common;

use common::fake_stub::{FakeStub, FakeStubConfig, Fault};
use inspector::dwarf::DebugInfo;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_inspector");
/// Far more than any of these commands may take (stub replies time out after 3 s).
const HANG: Duration = Duration::from_secs(30);

struct Ran {
    status: ExitStatus,
    stderr: String,
    took: Duration,
}

/// Runs the inspector with `args`; kills it and panics if it runs longer than [`HANG`].
fn run(args: &[&str]) -> Ran {
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = common::cli::wait_bounded(&mut child, HANG) else {
        panic!(
            "`inspector {}` hung (killed after {HANG:?}); stderr:\n{}",
            args.join(" "),
            reader.join().unwrap()
        );
    };
    Ran {
        status,
        stderr: reader.join().unwrap(),
        took: start.elapsed(),
    }
}

/// Status 1, and the last line of stderr is the error, naming one of `any` and all of `all`.
fn assert_fails_with(r: &Ran, any: &[&str], all: &[&str], cmd: &str) {
    assert_eq!(
        r.status.code(),
        Some(1),
        "{cmd}: {}\n{}",
        r.status,
        r.stderr
    );
    let err = r.stderr.trim().lines().last().unwrap_or_default();
    assert!(err.starts_with("inspector: "), "{cmd}: {}", r.stderr);
    assert!(
        any.iter().any(|w| err.contains(w)),
        "{cmd}: none of {any:?} in: {err}"
    );
    for w in all {
        assert!(err.contains(w), "{cmd}: `{w}` not in: {err}");
    }
}

const SILENT: &str = "no answer from the GDB stub";
const CLOSED: &str = "closed the connection";

fn fixture(dir: &Path) -> PathBuf {
    common::fixtures::rust_tracker_object(dir)
}

/// Each command as a user would type it, against `gdb`.
fn commands(elf: &Path, gdb: &str) -> Vec<Vec<String>> {
    let e = elf.to_str().unwrap();
    let with = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| s.to_string())
            .chain(["--elf".into(), e.into(), "--gdb".into(), gdb.into()])
            .collect()
    };
    vec![
        with(&["snapshot"]),
        with(&["watch", "--interval", "50ms"]),
        with(&["break", "track_alloc", "--timeout", "20s"]),
        with(&["step", "--from", "track_alloc", "--timeout", "20s"]),
    ]
}

/// A listener that accepts connections and reads whatever comes, never answering.
fn silent_listener() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A listener that accepts connections and closes them at once.
fn closing_listener() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            drop(conn);
        }
    });
    addr
}

#[test]
fn a_stub_that_never_answers_is_a_clear_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture(dir.path());
    let gdb = silent_listener();
    for cmd in commands(&elf, &gdb) {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_fails_with(&r, &[SILENT], &[], &cmd[0]);
        assert!(r.took < Duration::from_secs(15), "{}: {:?}", cmd[0], r.took);
    }
}

#[test]
fn a_stub_that_closes_at_once_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture(dir.path());
    let gdb = closing_listener();
    for cmd in commands(&elf, &gdb) {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let r = run(&args);
        assert_fails_with(&r, &[CLOSED], &[], &cmd[0]);
    }
}

fn fake_stub(elf: &Path, fault: Fault) -> FakeStub {
    let info = DebugInfo::load(elf).unwrap();
    let regions = common::fixtures::memory_regions(&info);
    FakeStub::spawn(FakeStubConfig {
        regions,
        fault,
        ..FakeStubConfig::default()
    })
}

/// Packets of `snapshot` against the fake stub, counted by the stub: enough to place a fault
/// in the middle of the snapshot's reads.
fn snapshot_packets(elf: &Path) -> u32 {
    let mut stub = fake_stub(elf, Fault::None);
    let r = run(&[
        "snapshot",
        "--elf",
        elf.to_str().unwrap(),
        "--gdb",
        &stub.addr,
    ]);
    assert!(r.status.success(), "{}", r.stderr);
    stub.wait_end();
    let n = stub.shared().packets;
    n
}

#[test]
fn the_stub_closing_or_going_silent_mid_snapshot_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture(dir.path());
    let total = snapshot_packets(&elf);
    assert!(total > 8, "{total} packets");
    // The last few packets: the guest is halted for the snapshot's reads (the very last is the
    // detach, which only fails the detach). A silent stub is given up on after the reply
    // timeout; the connection is then closed, and what the reader says depends on the read.
    for n in [total - 5, total - 3, total - 2] {
        for (fault, want) in [
            (Fault::DisconnectAt(n), &[CLOSED][..]),
            (Fault::SilentFrom(n), &[SILENT, CLOSED][..]),
        ] {
            let stub = fake_stub(&elf, fault);
            let r = run(&[
                "snapshot",
                "--elf",
                elf.to_str().unwrap(),
                "--gdb",
                &stub.addr,
            ]);
            assert_fails_with(&r, want, &[], &format!("snapshot with {fault:?}"));
        }
    }
}

#[test]
fn watch_says_it_lost_the_kernel_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture(dir.path());
    for (fault, want) in [
        (Fault::DisconnectAt(60), &[CLOSED][..]),
        (Fault::SilentFrom(60), &[SILENT, CLOSED][..]),
    ] {
        let stub = fake_stub(&elf, fault);
        let r = run(&[
            "watch",
            "--interval",
            "20ms",
            "--elf",
            elf.to_str().unwrap(),
            "--gdb",
            &stub.addr,
        ]);
        assert_fails_with(
            &r,
            want,
            &["lost the kernel at", "watch exits"],
            &format!("watch with {fault:?}"),
        );
    }
}

#[test]
fn break_with_the_stub_closing_or_silent_at_a_hit_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture(dir.path());
    // The fake guest's program loops over 0x8020_0000..0x8020_0100: a breakpoint inside is hit
    // over and over, each hit a halt, some reads and a continue.
    for n in [20, 23, 27] {
        for (fault, want) in [
            (Fault::DisconnectAt(n), &[CLOSED][..]),
            (Fault::SilentFrom(n), &[SILENT, CLOSED][..]),
        ] {
            let stub = fake_stub(&elf, fault);
            let r = run(&[
                "break",
                "*0x80200010",
                "--count",
                "1000",
                "--timeout",
                "20s",
                "--elf",
                elf.to_str().unwrap(),
                "--gdb",
                &stub.addr,
            ]);
            assert_fails_with(&r, want, &[], &format!("break with {fault:?}"));
        }
    }
}
