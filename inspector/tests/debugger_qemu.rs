//! The debugger against the real kernel in QEMU: `break track_alloc --if 'owner == P'` reports
//! the arguments of P's first allocations, which the next snapshot shows as P's entries;
//! `step --from free_all_tracked_for_pid` at P's exit walks the sweep loop's source lines and
//! ends when the function returns, after which P owns nothing; the kernel keeps running.
//! Each test boots its own QEMU (killed by pid on drop) and has timeouts.
//!
//! Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test debugger_qemu -- --include-ignored`.

mod common;

use common::cli::{finish, snapshot, start_armed};
use common::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn gdb(q: &Qemu) -> String {
    format!("127.0.0.1:{}", q.gdb_port())
}

/// The pid the next spawned process gets: pids are handed out in sequence, so run `allocs`
/// (which prints its own pid) and add one.
fn next_pid(q: &mut Qemu) -> u64 {
    let out = q.run("allocs", T);
    let line = out
        .lines()
        .find(|l| l.starts_with("allocs: pid="))
        .unwrap_or_else(|| panic!("no pid line in:\n{out}"));
    line["allocs: pid=".len()..].trim().parse::<u64>().unwrap() + 1
}

/// (pa, npages, tag) of the snapshot's entries owned by `pid`.
fn owned(snap: &Value, pid: u64) -> Vec<(u64, u64, String)> {
    snap["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["owner"] == pid)
        .map(|e| {
            (
                e["pa"].as_u64().unwrap(),
                e["npages"].as_u64().unwrap(),
                e["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_shell_answers(q: &mut Qemu) {
    let mem = q.run("mem", T);
    assert!(mem.contains("pages total="), "{mem}");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn break_on_track_alloc_with_a_condition_matches_the_snapshot() {
    let mut q = Qemu::boot();
    let pid = next_pid(&mut q);
    let elf = kernel_elf();
    let cond = format!("owner == {pid}");
    let (child, rx, err) = start_armed(&[
        "break",
        "track_alloc",
        "--count",
        "3",
        "--if",
        &cond,
        "--json",
        "--timeout",
        "30s",
        "--elf",
        elf.to_str().unwrap(),
        "--gdb",
        &gdb(&q),
    ]);
    q.send_line("leak 3 5 &");
    let hits = finish(child, rx, err, Duration::from_secs(40));
    let leak = q.expect("allocated 3 pages", T);
    assert!(leak.contains(&format!("leak: pid={pid} ")), "{leak}");

    assert_eq!(hits.len(), 3, "{hits:?}");
    let snap = snapshot(&q);
    let entries = owned(&snap, pid);
    for h in &hits {
        assert_eq!(h["function"], "track_alloc", "{h}");
        assert!(
            h["file"]
                .as_str()
                .unwrap()
                .ends_with("kernel/src/mm/tracker.rs"),
            "{h}"
        );
        assert!(h["line"].as_u64().unwrap() > 0, "{h}");
        assert!(h["pc"].as_u64().unwrap() > 0, "{h}");
        let a = &h["args"];
        assert_eq!(a["owner"], pid, "the condition held: {h}");
        let row = (
            a["pa"].as_u64().unwrap(),
            a["npages"].as_u64().unwrap(),
            a["tag"].as_str().unwrap().to_string(),
        );
        assert!(
            entries.contains(&row),
            "hit {row:?} is not among pid {pid}'s entries {entries:?}"
        );
    }
    let distinct: std::collections::BTreeSet<u64> = hits
        .iter()
        .map(|h| h["args"]["pa"].as_u64().unwrap())
        .collect();
    assert_eq!(distinct.len(), 3, "three different allocations: {hits:?}");
    assert_shell_answers(&mut q);
}

/// 1-based numbers of the lines of `file` containing `needle`.
fn lines_containing(file: &Path, needle: &str) -> Vec<u64> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn step_through_the_exit_sweep_until_it_returns() {
    let mut q = Qemu::boot();
    q.run("debug on", T); // the sweep then prints: printing helpers must be stepped over
    let pid = next_pid(&mut q);
    let elf = kernel_elf();
    let cond = format!("pid == {pid}");
    let (child, rx, err) = start_armed(&[
        "step",
        "--from",
        "free_all_tracked_for_pid",
        "--lines",
        "3000",
        "--if",
        &cond,
        "--json",
        "--timeout",
        "30s",
        "--elf",
        elf.to_str().unwrap(),
        "--gdb",
        &gdb(&q),
    ]);
    q.send_line("leak 3 1 &");
    let out = finish(child, rx, err, Duration::from_secs(50));
    // The first line is the stop, with the arguments.
    let first = &out[0];
    assert_eq!(first["stopped"], "free_all_tracked_for_pid", "{first}");
    assert_eq!(first["args"]["pid"], pid, "{first}");
    assert_eq!(first["function"], "free_all_tracked_for_pid", "{first}");
    let lines = &out[..];
    assert!(!lines.is_empty());
    for l in lines {
        for k in ["file", "line", "function", "text"] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }

    // The sweep loop in the tracker crate: its header, the callback and the slot removal,
    // found by their text (no line numbers hard-coded).
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/tracker/src/lib.rs");
    let visited_lib: Vec<u64> = lines
        .iter()
        .filter(|l| {
            l["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("tracker/src/lib.rs")
        })
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    // The removal is its call's line or, when the line table gives that line no statement
    // row of its own, the body of `Tracker::remove`, which the step enters.
    for needles in [
        &["for slot in 0.."][..],
        &["on_entry(&e);"],
        &[
            "t.remove(slot);",
            "self.index.remove(&self.table[..], entry.pa, slot);",
        ],
    ] {
        let want: Vec<u64> = needles
            .iter()
            .flat_map(|needle| lines_containing(&lib, needle))
            .collect();
        assert!(
            want.iter().any(|n| visited_lib.contains(n)),
            "no visited line contains any of {needles:?} (lines {want:?}); visited: {visited_lib:?}"
        );
    }
    // The loop is a loop: its header is visited more than once.
    let header = lines_containing(&lib, "for slot in 0..");
    let header_visits = visited_lib.iter().filter(|n| header.contains(n)).count();
    assert!(header_visits > 1, "{header_visits}");
    // Printing and page-freeing helpers were stepped over, not entered (the `println!`
    // expansion itself is inlined at the call site and may show as console.rs lines).
    for l in lines {
        let f = l["function"].as_str().unwrap_or("");
        assert!(
            !["_print", "write_fmt", "write_str", "page_alloc"]
                .iter()
                .any(|h| f.contains(h)),
            "stepped into a helper: {l}"
        );
    }
    // The kernel's per-entry callback (which prints, then frees the pages) is visited too.
    let glue = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src/mm/tracker.rs");
    let free_line = lines_containing(&glue, "with_pages(|a| a.free(e.pa, e.npages))");
    assert!(
        lines.iter().any(|l| {
            l["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("kernel/src/mm/tracker.rs")
                && free_line.contains(&l["line"].as_u64().unwrap_or(0))
        }),
        "the sweep callback's free line {free_line:?} was not visited"
    );
    // It ended because the function returned, in its caller.
    let last = lines.last().unwrap();
    assert_eq!(last["returned"], true, "{last}");
    assert_eq!(last["function"], "free_proc", "{last}");

    // The sweep completed: the pid owns nothing, and the kernel runs on.
    q.expect(
        &format!("Force freeing leftover allocations for pid={pid}"),
        T,
    );
    let snap = snapshot(&q);
    assert_eq!(owned(&snap, pid), Vec::new());
    assert_shell_answers(&mut q);
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn break_on_a_source_line_inside_inlined_code() {
    let mut q = Qemu::boot();
    // The exit sweep's per-entry callback, inlined into the tracker crate's loop.
    let glue = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/src/mm/tracker.rs");
    let line = lines_containing(&glue, "with_pages(|a| a.free(e.pa, e.npages))")[0];
    let location = format!("kernel/src/mm/tracker.rs:{line}");
    let elf = kernel_elf();
    // A condition on a field of the inlined callback's argument `e: &AllocEntry`.
    let pid = next_pid(&mut q);
    let cond = format!("e.owner == {pid}");
    let (child, rx, err) = start_armed(&[
        "break",
        &location,
        "--if",
        &cond,
        "--json",
        "--timeout",
        "30s",
        "--elf",
        elf.to_str().unwrap(),
        "--gdb",
        &gdb(&q),
    ]);
    q.send_line("leak 2 0 &");
    let hits = finish(child, rx, err, Duration::from_secs(40));
    assert_eq!(hits.len(), 1, "{hits:?}");
    let h = &hits[0];
    assert!(
        h["file"]
            .as_str()
            .unwrap()
            .ends_with("kernel/src/mm/tracker.rs"),
        "{h}"
    );
    assert_eq!(h["line"], line, "{h}");
    assert!(
        h["function"]
            .as_str()
            .unwrap()
            .contains("free_all_tracked_for_pid"),
        "{h}"
    );
    // Among the inlined calls (innermost first: the page allocator's `with_pages`, then the
    // callback) the callback shows `e` through the reference.
    let e = h["inlined_args"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| c["args"]["e"].as_str())
        .unwrap_or_default();
    assert!(e.contains(&format!("owner: {pid}")), "{h}");
    assert!(e.contains("tag: \"alloc_pages\""), "{h}");
    assert_shell_answers(&mut q);
}
