//! The kernel on several harts (QEMU `-smp`, 2 unless `LEAKSCOPE_SMP` says otherwise): every
//! hart comes online, processes run on all of them at once, and under parallel load (three
//! `churn`s and twenty leaking `leak 50`s in the background) every page comes back: `mem`
//! after equals `mem` before, and no entry is left for a dead PID.
//!
//! Boots its own QEMU (killed by pid on drop); every wait has a timeout.

mod common;

use common::qemu::{console_field as field, smp, Qemu};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// `mem`'s summary as (free, used, tracked, allocs), and its whole output.
fn mem(q: &mut Qemu) -> ((u64, u64, u64, u64), String) {
    let out = q.run("mem", T);
    let first = out
        .lines()
        .find(|l| l.starts_with("pages total="))
        .unwrap_or_else(|| panic!("no mem summary in {out:?}"));
    (
        (
            field(first, "free"),
            field(first, "used"),
            field(first, "tracked"),
            field(first, "allocs"),
        ),
        out,
    )
}

/// Starts `cmd` (program `name`) in the background. Waits for the shell's word rather than
/// for the echo of the line, which other processes' output may split.
fn bg(q: &mut Qemu, cmd: &str, name: &str) {
    q.send_line(&format!("{cmd} &"));
    q.expect(&format!("] {name} running in the background"), T);
    q.expect("$ ", T);
}

/// `ps` rows as (pid, state, hart, name); hart None for `-`. Robust to background output
/// around the echo of the command.
fn ps(q: &mut Qemu) -> Vec<(u32, String, Option<u32>, String)> {
    q.send_line("ps");
    q.expect("PID PPID", T);
    let out = format!("PID PPID{}", q.expect("$ ", T));
    let mut lines = out.lines().skip_while(|l| !l.starts_with("PID "));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no ps header in {out:?}"));
    assert!(
        header.contains(" HART "),
        "ps has no HART column: {header:?}"
    );
    lines
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let pid = w.first()?.parse().ok()?;
            (w.len() >= 5).then(|| (pid, w[2].to_string(), w[3].parse().ok(), w[4].to_string()))
        })
        .collect()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn every_hart_comes_online_and_runs_processes() {
    let n = smp();
    let mut q = Qemu::start(&[]);
    q.expect(&format!("smp: {n} harts online"), T);
    q.expect("$ ", T);
    // Busy processes keep every hart but ps's own busy: ps then sees each hart running one.
    for _ in 0..n {
        bg(&mut q, "spin 1000", "spin");
    }
    let deadline = Instant::now() + T;
    loop {
        let rows = ps(&mut q);
        let mut harts: Vec<u32> = rows
            .iter()
            .filter(|r| r.1 == "running")
            .map(|r| r.2.expect("a running process without a hart"))
            .collect();
        assert!(
            rows.iter().all(|r| (r.1 == "running") == r.2.is_some()),
            "a hart shown for a process that is not running: {rows:?}"
        );
        harts.sort();
        harts.dedup();
        if harts.len() == n as usize {
            assert!(harts.iter().all(|&h| h < n), "{harts:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never saw a process running on each of the {n} harts: {rows:?}"
        );
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn parallel_churn_and_leaks_give_every_page_back() {
    let mut q = Qemu::boot();
    let (before, _) = mem(&mut q);
    for _ in 0..3 {
        bg(&mut q, "churn 300", "churn");
    }
    for _ in 0..20 {
        bg(&mut q, "leak 50", "leak");
    }
    // Wait until every background process has exited and been reaped (the shell reaps before
    // each prompt), then count again.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let rows = ps(&mut q);
        if rows.iter().all(|r| r.3 == "shell" || r.3 == "ps") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background processes still there after 180 s: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = q.output();
    assert_eq!(out.matches("churn: pid=").count(), 3, "three churns finish");
    assert_eq!(
        out.matches("allocated 50 pages").count(),
        20,
        "twenty leaks finish"
    );
    let (after, text) = mem(&mut q);
    assert_eq!(after, before, "mem after the parallel load: {text}");
    assert!(
        !text.contains("<dead>"),
        "an entry left for a dead PID: {text}"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn lockstat_counts_every_lock_and_grows_with_allocations() {
    let mut q = Qemu::boot();
    let read = |q: &mut Qemu| -> Vec<(String, u64, u64, u64)> {
        let out = q.run("lockstat", T);
        out.lines()
            .filter(|l| l.starts_with("lock="))
            .map(|l| {
                let name = l.split_whitespace().next().unwrap()["lock=".len()..].to_string();
                (
                    name,
                    field(l, "acquired"),
                    field(l, "contended"),
                    field(l, "wait_us"),
                )
            })
            .collect()
    };
    let before = read(&mut q);
    let names: Vec<&str> = before.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["proc", "tracker", "pages", "console"]);
    q.run("allocbench 300", T);
    let after = read(&mut q);
    for (b, a) in before.iter().zip(&after) {
        assert!(a.1 >= b.1 && a.2 >= b.2 && a.3 >= b.3, "{b:?} -> {a:?}");
        assert!(a.2 <= a.1, "more contended than acquired: {a:?}");
    }
    // 300 pairs: at least 600 tracker operations and page-bitmap changes.
    assert!(after[1].1 - before[1].1 >= 600, "{before:?} -> {after:?}");
    assert!(after[2].1 - before[2].1 >= 600, "{before:?} -> {after:?}");
}
