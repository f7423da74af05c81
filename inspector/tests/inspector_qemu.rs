//! The inspector against the real kernel in QEMU: `snapshot --json` agrees entry for entry with
//! the kernel's own `allocs` dump over serial; exited leakers disappear from the next snapshot
//! and `watch` reports their exit reclaims; an ELF that is not the running kernel is refused.
//! Each test boots its own QEMU (killed by pid on drop) with timeouts.

mod common;

use common::cli::{allocs_rows, entry_rows, snapshot, BIN};
use common::qemu::{kernel_elf, Qemu};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

/// The PID of the `leak` that printed `allocated {pages} pages` (the line may follow a prompt).
fn leak_pid(out: &str, pages: u64) -> u64 {
    let line = out
        .lines()
        .find(|l| l.contains("leak: pid=") && l.contains(&format!("allocated {pages} pages")))
        .unwrap_or_else(|| panic!("no leak line for {pages} pages in:\n{out}"));
    let rest = line.split("leak: pid=").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn watch(q: &Qemu) -> std::process::Child {
    Command::new(BIN)
        .args([
            "watch",
            "--json-lines",
            "--interval",
            "100ms",
            "--duration",
            "90s",
            "--elf",
        ])
        .arg(kernel_elf())
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops `watch` as a user would (Ctrl-C: it detaches) and returns its JSON lines.
fn stop_watch(child: std::process::Child) -> Vec<Value> {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "watch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn snapshot_matches_allocs_dump_and_watch_sees_exit_reclaims() {
    let mut q = Qemu::boot();
    q.run("debug on", T); // the kernel then reports each exit sweep on the console
    q.send_line("leak 20 30 &");
    let a = leak_pid(&q.expect("allocated 20 pages", T), 20);
    q.send_line("leak 7 30 &");
    let b = leak_pid(&q.expect("allocated 7 pages", T), 7);

    // A snapshot, then the kernel's own dump: the same entries, except those of the `allocs`
    // process itself, which exist only while it prints.
    let snap = snapshot(&q);
    let dump = q.run("allocs", T);
    let dumped = allocs_rows(&dump);
    let snapped = entry_rows(&snap);
    assert_eq!(
        snapped, dumped,
        "snapshot and the kernel's allocs dump disagree"
    );
    for (pid, pages) in [(a, 20), (b, 7)] {
        let p = snap["pids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .expect("leaker in pids");
        assert_eq!(p["name"], "leak");
        let leaked: u64 = snapped
            .iter()
            .filter(|r| r.2 == pid && r.3 == "alloc_pages")
            .map(|r| r.1)
            .sum();
        assert_eq!(leaked, pages, "pid {pid}");
    }
    assert_eq!(snap["count"].as_u64().unwrap(), snapped.len() as u64);

    // The header's free-page count is exact: what `mem` reports while it runs, plus the pages
    // of the `mem` process itself (which did not exist at the snapshot).
    let snap = snapshot(&q);
    let mem = q.run("mem", T);
    let totals = mem
        .lines()
        .find(|l| l.starts_with("pages total="))
        .unwrap_or_else(|| panic!("{mem}"));
    let mem_free: u64 = field(totals, "free").parse().unwrap();
    let own: u64 = mem
        .lines()
        .find(|l| l.contains("name=mem "))
        .map_or(0, |l| field(l, "pages").parse().unwrap());
    assert_eq!(
        snap["free_pages"].as_u64().unwrap(),
        mem_free + own,
        "{mem}"
    );
    // Every page from the allocator's base on is tracked or free; below it lie firmware and
    // the kernel image (what the page map draws as such).
    let n = |k: &str| snap[k].as_u64().unwrap();
    assert!(n("alloc_base") > n("ram_base"));
    assert_eq!(
        n("ram_pages") - n("free_pages") - n("tracked_pages"),
        (n("alloc_base") - n("ram_base")) / inspector::riscv::PAGE_SIZE
    );

    // Watch until both leakers have exited (the kernel says so on the console).
    let watcher = watch(&q);
    let deadline = Instant::now() + Duration::from_secs(60);
    let swept = |q: &Qemu, pid| {
        q.output().contains(&format!(
            "[free_all_tracked] Force freeing leftover allocations for pid={pid}\n"
        ))
    };
    while !(swept(&q, a) && swept(&q, b)) {
        assert!(
            Instant::now() < deadline,
            "leakers did not exit in time:\n{}",
            q.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500)); // at least one more watch interval
    let events = stop_watch(watcher);
    for (pid, pages) in [(a, 20), (b, 7)] {
        let reclaimed: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "exit_reclaim" && e["owner"] == pid)
            .collect();
        assert!(
            reclaimed.iter().all(|e| e["tag"] == "alloc_pages"),
            "{reclaimed:?}"
        );
        let n: u64 = reclaimed
            .iter()
            .map(|e| e["npages"].as_u64().unwrap())
            .sum();
        assert_eq!(
            n, pages,
            "watch must show pid {pid}'s {pages} leaked pages reclaimed"
        );
    }
    assert!(events.last().unwrap()["running_share"].as_f64().unwrap() > 0.5);

    // They own nothing any more; once the shell has reaped them (it does so before running the
    // next command) the next snapshot no longer knows them at all.
    let after = snapshot(&q);
    assert!(entry_rows(&after).iter().all(|r| r.2 != a && r.2 != b));
    assert!(
        q.run("hello", T).contains("Hello from pid"),
        "the kernel lives on"
    );
    let after = snapshot(&q);
    let pids = after["pids"].as_array().unwrap();
    assert!(
        pids.iter().all(|p| p["pid"] != a && p["pid"] != b),
        "{pids:?}"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn elf_that_is_not_the_running_kernel_is_refused() {
    use object::{Object, ObjectSection, ObjectSymbol};
    let q = Qemu::boot();
    // A copy of the kernel ELF whose build id differs in one byte.
    let mut bytes = std::fs::read(kernel_elf()).unwrap();
    let file_offset = {
        let file = object::File::parse(&*bytes).unwrap();
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok("leakscope_build_id"))
            .expect("build id symbol");
        let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
        let (off, _) = section.file_range().expect("build id has file bytes");
        (off + sym.address() - section.address()) as usize
    };
    bytes[file_offset] ^= 0xff;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-kernel.elf");
    std::fs::write(&other, &bytes).unwrap();
    let out = Command::new(BIN)
        .args(["snapshot", "--elf"])
        .arg(&other)
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the running kernel"), "{err}");
    // The guest was resumed: the right ELF still works at once.
    assert_eq!(snapshot(&q)["capacity"], 8192);
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn detach_works_after_a_gdb_session_in_multiprocess_mode() {
    let mut q = Qemu::boot();
    // A plain gdb (multiprocess on, as gdb negotiates by default) attaches and detaches first;
    // QEMU keeps multiprocess mode and refuses a later plain `D`.
    let status = Command::new("gdb-multiarch")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("target remote 127.0.0.1:{}", q.gdb_port()),
            "-ex",
            "detach",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run gdb-multiarch (make setup installs it)");
    assert!(status.success());
    assert_eq!(
        snapshot(&q)["capacity"],
        8192,
        "snapshot must attach, read and detach cleanly"
    );
    assert!(
        q.run("hello", T).contains("Hello from pid"),
        "the guest must be running after the detach"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn following_the_events_agrees_with_reading_the_table() {
    use inspector::snapshot::Sampler;
    use inspector::target::{HaltGuard, RspTarget, RspTargetOptions, Target};
    let mut q = Qemu::boot();
    let debug = inspector::source::load_elf(&kernel_elf()).unwrap();
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    let mut target = RspTarget::connect(&gdb, RspTargetOptions::default()).unwrap();
    let mut incremental = Sampler::new(debug.clone()).unwrap();
    let mut fresh = Sampler::new(debug).unwrap();
    incremental.sample(&mut target).unwrap();

    q.send_line("churn 20000 &");
    let (mut followed, mut compared) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !q.output().contains("churn: pid=") {
        assert!(
            Instant::now() < deadline,
            "churn did not finish:\n{}",
            q.output()
        );
        std::thread::sleep(Duration::from_millis(15));
        // Both readers under one halt, so they see the same state.
        let mut halted = HaltGuard::new(&mut target).unwrap();
        let a = incremental.sample(&mut *halted).unwrap();
        // Halted mid-change: the sampler reports its previous (even) state marked `mid_change`,
        // and the fresh reader, with no previous state, could only say `Torn`. The guard
        // resumes; try again.
        if a.mid_change || a.header.generation % 2 == 1 {
            continue;
        }
        fresh.reset();
        let b = fresh.sample(&mut *halted).unwrap();
        drop(halted);
        assert!(b.table_read);
        assert_eq!(a.entries, b.entries, "generation {}", a.header.generation);
        compared += 1;
        if !a.events.is_empty() && a.missed_events == 0 {
            // The kernel's events always account for its changes: no table read needed.
            assert!(
                !a.table_read,
                "{} events did not explain the change",
                a.events.len()
            );
            followed += 1;
        }
    }
    target.detach().unwrap();
    assert!(
        compared > 10 && followed > compared / 2,
        "followed {followed} of {compared}"
    );
}
