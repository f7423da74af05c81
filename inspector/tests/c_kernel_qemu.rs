//! The inspector, unchanged, on the C example kernel (examples/chapter-c, `make c-kernel`):
//! the chapter's bare `alloc_table` built by clang, no header, no generation counter, no event
//! ring, no build id. Each test boots its own QEMU (killed by pid on drop) and has timeouts:
//! - a snapshot taken at a halt in `dump_allocs` equals what that `dump_allocs` prints;
//! - `watch` reports exactly the exit reclaims the console prints, per process;
//! - `break track_alloc` decodes the C arguments (`paddr_t`, `size_t`, `pid_t`, `char *`);
//! - `step --from free_all_tracked_for_pid` walks the C source of the sweep.
//!
//! Run: `make test`, or after `make c-kernel`:
//! `cargo test -p inspector --test c_kernel_qemu -- --include-ignored`.

mod common;

use common::cli::BIN;
use common::qemu::{c_kernel_elf, Qemu};
use inspector::debugger::{Debugger, Location};
use inspector::source::Session;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// (pa, npages, owner, tag) of one allocation.
type Row = (u64, u64, u64, String);

/// Boots the C kernel and waits until a first demo process has exited (the table then holds
/// other processes' allocations, the console has printed an exit report).
fn boot() -> Qemu {
    let mut q = Qemu::start_elf(&c_kernel_elf(), &[]);
    q.expect("keys: d = dump_allocs", T);
    q.expect("==== END of list - ALLOCS for pid=", T);
    q
}

fn gdb(q: &Qemu) -> String {
    format!("127.0.0.1:{}", q.gdb_port())
}

/// Runs the inspector with `args` against `q`'s C kernel; kills it after `limit`. Returns its
/// stdout, after asserting it succeeded.
fn inspector(q: &Qemu, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--elf")
        .arg(c_kernel_elf())
        .args(["--gdb", &gdb(q)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let Some(status) = common::cli::wait_bounded(&mut child, limit) else {
        panic!(
            "inspector {args:?} did not finish in {limit:?}; stderr:\n{}",
            err.join().unwrap()
        );
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "inspector {args:?} failed ({status}): {err}"
    );
    out
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The value of `key=` in a console line (words separated by spaces).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
#[ignore = "needs QEMU and build/chapter-c.elf (make c-kernel); make test runs it"]
fn a_snapshot_equals_dump_allocs_printed_at_the_same_halt() {
    let mut q = boot();
    let elf = c_kernel_elf();
    let mut session = Session::connect(&elf, &gdb(&q)).unwrap();
    let mut dbg = Debugger::new(session.debug_info().clone());
    dbg.break_at_running(
        session.target(),
        Location::Function("dump_allocs".into()),
        None,
    )
    .unwrap();
    q.send("d"); // the demo's key for dump_allocs
    let hit = dbg
        .continue_until_hit(session.target(), T, None)
        .unwrap()
        .expect("dump_allocs was called after `d`");
    assert!(hit.breakpoint.is_some());
    // Held at the breakpoint (not in a function that writes the table): read in place.
    let snap = session.sample().unwrap();
    assert!(!snap.mid_change);
    session.detach().unwrap(); // breakpoint removed, the kernel prints its dump

    q.expect("== OUTSTANDING ALLOCS ==\n", T);
    // The dump is printed in one go; the next exit report follows it.
    let dump = q.expect("[free_all_tracked]", T);
    let printed: BTreeSet<Row> = dump
        .lines()
        .filter(|l| l.starts_with("PA=0x"))
        .map(|l| {
            (
                hex(field(l, "PA")),
                field(l, "npages").parse().unwrap(),
                field(l, "owner").parse().unwrap(),
                field(l, "tag").to_string(),
            )
        })
        .collect();
    let read: BTreeSet<Row> = snap
        .entries
        .iter()
        .map(|e| (e.pa, e.npages, e.owner as u64, e.tag.to_string()))
        .collect();
    assert!(!read.is_empty(), "the demo's processes own pages");
    assert_eq!(read, printed, "snapshot vs dump_allocs:\n{dump}");
    assert_eq!(snap.header.count, printed.len() as u64, "alloc_table_count");
    // Names and states from the kernel's proc_table.
    for e in snap.entries.iter() {
        let p = snap.process(e.owner).expect("each owner is a live process");
        assert_eq!(p.name, "demo");
    }
}

#[test]
#[ignore = "needs QEMU and build/chapter-c.elf (make c-kernel); make test runs it"]
fn watch_reports_the_exit_reclaims_the_console_prints() {
    let mut q = boot();
    let out = inspector(
        &q,
        &[
            "watch",
            "--json-lines",
            "--interval",
            "50ms",
            "--duration",
            "6s",
        ],
        Duration::from_secs(40),
    );
    // Let the console catch up with the last reclaims watch saw.
    std::thread::sleep(Duration::from_millis(500));
    q.expect("==== END of list", T);
    let mut lines = json_lines(&out);
    let last = lines.pop().expect("the running-share line");
    assert!(last["running_share"].as_f64().is_some(), "{last}");

    let mut allocated: BTreeSet<u64> = BTreeSet::new();
    let mut reclaimed: BTreeMap<u64, BTreeSet<Row>> = BTreeMap::new();
    let mut last_reclaimed = None;
    for e in &lines {
        let Some(kind) = e["kind"].as_str() else {
            continue;
        };
        let owner = e["owner"].as_u64().unwrap();
        match kind {
            "alloc" => {
                allocated.insert(owner);
            }
            "exit_reclaim" => {
                last_reclaimed = Some(owner);
                reclaimed.entry(owner).or_default().insert((
                    e["pa"].as_u64().unwrap(),
                    e["npages"].as_u64().unwrap(),
                    owner,
                    e["tag"].as_str().unwrap().to_string(),
                ));
            }
            _ => {}
        }
    }

    // The console's exit reports: `[free_all_tracked] Force freeing leftover allocations for
    // pid=N`, then ` freeing leak: pa=… npages=… tag=… = destroyed` per leak.
    let console = q.output();
    let mut printed: BTreeMap<u64, BTreeSet<Row>> = BTreeMap::new();
    let mut pid = None;
    for line in console.lines() {
        if let Some(rest) =
            line.strip_prefix("[free_all_tracked] Force freeing leftover allocations for pid=")
        {
            pid = Some(rest.trim().parse::<u64>().unwrap());
        } else if line.starts_with(" freeing leak: ") {
            let p = pid.expect("a leak line follows its pid's line");
            printed.entry(p).or_default().insert((
                hex(field(line, "pa")),
                field(line, "npages").parse().unwrap(),
                p,
                field(line, "tag").to_string(),
            ));
        }
    }

    // Processes whose whole life watch saw (they allocated after its first snapshot) and
    // whose exit it saw: their reclaims are exactly the console's.
    let whole: Vec<u64> = reclaimed
        .keys()
        .copied()
        .filter(|p| allocated.contains(p))
        .collect();
    assert!(
        whole.len() >= 3,
        "watch saw {} whole processes exit; its events:\n{out}",
        whole.len()
    );
    for p in whole {
        let (seen, said) = (&reclaimed[&p], printed.get(&p).cloned().unwrap_or_default());
        if Some(p) == last_reclaimed {
            // watch's last snapshot may have caught this sweep half-way (a consistent state:
            // the kernel prints between entries): what it saw must be in the console's report.
            assert!(seen.is_subset(&said), "pid {p}: {seen:?} vs {said:?}");
        } else {
            assert_eq!(
                seen, &said,
                "pid {p}: watch's exit reclaims vs the console's leaks"
            );
        }
    }
}

#[test]
#[ignore = "needs QEMU and build/chapter-c.elf (make c-kernel); make test runs it"]
fn break_track_alloc_decodes_the_c_arguments() {
    let q = boot();
    let out = inspector(
        &q,
        &[
            "break",
            "track_alloc",
            "--json",
            "--count",
            "3",
            "--timeout",
            "20s",
        ],
        Duration::from_secs(40),
    );
    let hits = json_lines(&out);
    assert_eq!(hits.len(), 3, "{out}");
    for h in &hits {
        assert_eq!(h["function"], "track_alloc", "{h}");
        assert!(
            h["file"].as_str().unwrap().ends_with("alloc-tracker.c"),
            "{h}"
        );
        let args = &h["args"];
        let pa = args["pa"].as_u64().expect("paddr_t pa");
        let npages = args["npages"].as_u64().expect("size_t npages");
        let owner = args["owner"].as_u64().expect("pid_t owner");
        let tag = args["tag"].as_str().expect("char *tag, as a string");
        assert!(pa >= 0x8020_0000 && pa % 4096 == 0, "{h}");
        assert!((1..=3).contains(&npages), "{h}");
        assert!(owner >= 1, "{h}");
        assert!(
            ["alloc_pages", "buffer", "page_table"].contains(&tag),
            "{h}"
        );
    }
}

#[test]
#[ignore = "needs QEMU and build/chapter-c.elf (make c-kernel); make test runs it"]
fn step_walks_the_c_source_of_free_all_tracked_for_pid() {
    let q = boot();
    let out = inspector(
        &q,
        &[
            "step",
            "--from",
            "free_all_tracked_for_pid",
            "--json",
            "--lines",
            "12",
            "--timeout",
            "20s",
        ],
        Duration::from_secs(60),
    );
    let lines = json_lines(&out);
    assert!(lines.len() >= 6, "{out}");
    let first = &lines[0];
    assert_eq!(first["stopped"], "free_all_tracked_for_pid", "{first}");
    assert!(first["args"]["pid"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["args"]["debug_flag"], 1, "{first}");
    for l in &lines {
        assert!(
            l["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("alloc-tracker.c"),
            "every line is the sweep's own C source: {l}"
        );
        assert_eq!(l["function"], "free_all_tracked_for_pid", "{l}");
    }
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("for (int i = 0; i < MAX_TRACKED_ALLOCS; i++)")),
        "the sweep's loop, as written: {texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Force freeing leftover")),
        "{texts:#?}"
    );
}

/// Dumps `q`'s guest memory (held halted by `session`) to `core` with QEMU's
/// dump-guest-memory.
fn dump_to(session: &mut Session, core: &std::path::Path) {
    let reply = session
        .target()
        .monitor(&format!("dump-guest-memory {}", core.display()))
        .unwrap();
    assert!(core.exists(), "QEMU wrote no dump: {reply:?}");
}

#[test]
#[ignore = "needs QEMU and build/chapter-c.elf (make c-kernel); make test runs it"]
fn a_dump_reads_offline_as_the_snapshot_of_its_moment_unless_a_hart_was_in_the_tracker() {
    let q = boot();
    let elf = c_kernel_elf();
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::connect(&elf, &gdb(&q)).unwrap();

    // Held outside the tracker's writers: the dump reads as the live snapshot of that moment.
    let deadline = Instant::now() + T;
    let live = loop {
        assert!(
            Instant::now() < deadline,
            "never halted outside the tracker"
        );
        session.target().halt().unwrap();
        match session.sample() {
            Ok(s) if !s.mid_change => break s,
            _ => {
                session.target().resume().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let core = dir.path().join("quiet.core");
    dump_to(&mut session, &core);
    session.target().resume().unwrap();
    let mut offline = inspector::source::CoreSource::open(&elf, &core, None).unwrap();
    let got = inspector::source::Source::sample(&mut offline).unwrap();
    let rows = |s: &inspector::model::Snapshot| -> Vec<Row> {
        s.entries
            .iter()
            .map(|e| (e.pa, e.npages, e.owner as u64, e.tag.to_string()))
            .collect()
    };
    assert!(!rows(&live).is_empty());
    assert_eq!(rows(&got), rows(&live));
    assert_eq!(got.header.count, live.header.count);
    assert_eq!(got.procs, live.procs);

    // Held inside track_alloc (at its breakpoint): the dump is refused, saying where.
    let mut dbg = Debugger::new(session.debug_info().clone());
    dbg.break_at_running(
        session.target(),
        Location::Function("track_alloc".into()),
        None,
    )
    .unwrap();
    dbg.continue_until_hit(session.target(), T, None)
        .unwrap()
        .expect("the demo allocates");
    let torn = dir.path().join("inside.core");
    dump_to(&mut session, &torn);
    session.detach().unwrap(); // the breakpoint goes, the kernel runs on
    let out = Command::new(BIN)
        .args(["snapshot", "--core"])
        .arg(&torn)
        .arg("--elf")
        .arg(&elf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("inside track_alloc"), "{err}");
}
