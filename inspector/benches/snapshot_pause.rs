//! Benchmark: how long a snapshot halts the guest, against the real kernel in QEMU.
//!
//! Scenarios: an unchanged table (only the header, count, events and process table are read);
//! a changing table (`churn` running) followed from the event ring, and the same with the
//! reader's memory reset so that it reads the slots below the high-water mark; and a full
//! 8192-entry table (`fill` holding it) read whole every time. Beside them, the wall time of
//! `gdb-multiarch -batch` printing `alloc_table` on the same QEMU, the usual way to look at it without Leakscope.
//!
//! Run with `make bench` (needs build/kernel.elf and QEMU, which `make bench` provides).

#[path = "../tests/common/qemu.rs"]
mod qemu;

use inspector::model::Snapshot;
use inspector::source::Session;
use qemu::{kernel_elf, Qemu};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Stats {
    samples: usize,
    median: u64,
    p90: u64,
    max: u64,
}

fn stats(mut v: Vec<u64>) -> Stats {
    assert!(!v.is_empty(), "no samples");
    v.sort_unstable();
    Stats {
        samples: v.len(),
        median: v[v.len() / 2],
        p90: v[v.len() * 9 / 10],
        max: *v.last().unwrap(),
    }
}

fn row(name: &str, s: &Stats, unit: &str) {
    println!(
        "{name:<36} {:>7} {:>10} {:>10} {:>10} {unit}",
        s.samples, s.median, s.p90, s.max
    );
}

/// Pauses (µs) of `n` snapshots `gap` apart, keeping those for which `keep` holds.
fn pauses(
    session: &mut Session,
    n: usize,
    gap: Duration,
    reset: bool,
    keep: impl Fn(&Snapshot) -> bool,
) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        if reset {
            session.sampler().reset();
        }
        let snap = session.sample().expect("snapshot");
        if keep(&snap) {
            out.push(snap.pause_us);
        }
        std::thread::sleep(gap);
    }
    out
}

fn main() {
    let elf = kernel_elf();
    let mut q = Qemu::boot();
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    println!(
        "snapshot pause against QEMU ({}), microseconds",
        elf.display()
    );
    println!(
        "{:<36} {:>7} {:>10} {:>10} {:>10}",
        "scenario", "samples", "median", "p90", "max"
    );

    let mut session = Session::connect(&elf, &gdb).expect("attach");
    session.sample().expect("first snapshot");
    row(
        "unchanged table",
        &stats(pauses(
            &mut session,
            200,
            Duration::from_millis(5),
            false,
            |s| !s.table_read,
        )),
        "us",
    );

    q.send_line("churn 20000 &");
    row(
        "churn: followed from the events",
        &stats(pauses(
            &mut session,
            300,
            Duration::from_millis(10),
            false,
            |s| !s.table_read && !s.events.is_empty(),
        )),
        "us",
    );
    row(
        "churn: slots below high-water read",
        &stats(pauses(
            &mut session,
            100,
            Duration::from_millis(10),
            true,
            |s| s.table_read,
        )),
        "us",
    );
    q.expect("churn: ", Duration::from_secs(120));

    q.send_line("fill 60 &");
    q.expect("fill: retry", Duration::from_secs(60));
    let full = session.sample().expect("snapshot");
    assert!(
        full.header.count >= 8000,
        "fill did not fill the table: count={}",
        full.header.count
    );
    let label = format!("full table ({} entries, re-read)", full.header.count);
    row(
        &label,
        &stats(pauses(
            &mut session,
            50,
            Duration::from_millis(10),
            true,
            |s| s.table_read,
        )),
        "us",
    );
    let qualified = session
        .debug_info()
        .global("alloc_table")
        .expect("alloc_table")
        .qualified_name;
    session.detach().expect("detach");

    // gdb-multiarch -batch printing the same full table: the whole command, as a script would.
    let mut gdb_times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let status = Command::new("gdb-multiarch")
            .args([
                "-batch",
                "-nx",
                "-ex",
                "set pagination off",
                "-ex",
                "set print elements 0",
            ])
            .args([
                "-ex",
                &format!("target remote {gdb}"),
                "-ex",
                &format!("print {qualified}"),
                "-ex",
                "detach",
            ])
            .arg(&elf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run gdb-multiarch (make setup installs it)");
        assert!(status.success(), "gdb-multiarch failed");
        gdb_times.push(start.elapsed().as_micros() as u64);
    }
    row(
        "gdb-multiarch -batch print (full)",
        &stats(gdb_times),
        "us (whole command)",
    );
}
