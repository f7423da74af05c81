//! End-to-end tests of the Leakscope kernel in QEMU: boot to the shell, the chapter's exit-cleanup
//! report, exact page counts through exit sweeps, refusal of bad syscall pointers and invalid
//! frees, a full tracker table failing cleanly, and `allocbench` timing its pairs and giving
//! every page back.
//!
//! They boot `build/kernel.elf` (or `LEAKSCOPE_KERNEL_ELF`), so they are ignored by a plain
//! `cargo test`; run them with `make test` (or `make kernel` then
//! `cargo test -p inspector --test kernel_boot -- --include-ignored`).

mod common;

use common::qemu::Qemu;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The value of `key=` in `line` (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let start = line.find(&pat)? + pat.len();
    Some(line[start..].split_whitespace().next().unwrap_or(""))
}

fn num(line: &str, key: &str) -> u64 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key}= in {line:?}"))
}

/// `mem`'s first line and its per-pid lines.
struct Mem {
    free: u64,
    tracked: u64,
    allocs: u64,
    /// (pid, name, allocs, pages)
    owners: Vec<(u64, String, u64, u64)>,
}

fn mem(q: &mut Qemu) -> Mem {
    let out = q.run("mem", T);
    let first = out
        .lines()
        .find(|l| l.starts_with("pages total="))
        .unwrap_or_else(|| panic!("no mem summary in {out:?}"));
    let owners = out
        .lines()
        .filter(|l| l.starts_with("pid="))
        .map(|l| {
            (
                num(l, "pid"),
                field(l, "name").unwrap().to_string(),
                num(l, "allocs"),
                num(l, "pages"),
            )
        })
        .collect();
    Mem {
        free: num(first, "free"),
        tracked: num(first, "tracked"),
        allocs: num(first, "allocs"),
        owners,
    }
}

/// PIDs `ps` lists.
fn ps_pids(q: &mut Qemu) -> BTreeSet<u64> {
    let out = q.run("ps", T);
    out.lines()
        .skip_while(|l| !l.starts_with("PID"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn boot_reaches_shell_and_runs_programs() {
    let mut q = Qemu::boot();
    let boot = q.output();
    assert!(boot.contains("Leakscope kernel"), "{boot}");
    assert!(
        boot.contains("RAM 0x80000000..0x88000000 (128 MiB)"),
        "{boot}"
    );
    assert!(q.run("hello", T).contains("Hello from pid 2!"));
    assert_eq!(q.run("echo a  b c", T).trim(), "a b c");
    let ls = q.run("ls", T);
    for p in [
        "shell",
        "ls",
        "ps",
        "mem",
        "hello",
        "echo",
        "date",
        "leak",
        "churn",
        "allocs",
        "debug",
        "badptr",
        "fill",
        "sysfuzz",
        "exits",
        "allocbench",
    ] {
        assert!(ls.lines().any(|l| l.trim() == p), "ls lacks {p}: {ls}");
    }
    assert!(q.run("nosuch", T).contains("nosuch: no such program"));
    let date = q.run("date", T);
    assert!(date.contains(" UTC (up "), "{date}");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn debug_on_leak_prints_the_chapters_report() {
    let mut q = Qemu::boot();
    assert!(q.run("debug on", T).contains("debug: on"));
    let out = q.run("leak 5", T);
    let line = out
        .lines()
        .find(|l| l.starts_with("leak: pid="))
        .unwrap_or_else(|| panic!("{out}"));
    let pid = num(line, "pid");
    let nallocs: usize = line
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(line.contains("allocated 5 pages"), "{line}");

    let lines: Vec<&str> = out.lines().collect();
    let pos = |s: &str| {
        lines
            .iter()
            .position(|l| *l == s)
            .unwrap_or_else(|| panic!("missing {s:?} in:\n{out}"))
    };
    let a = pos(&format!(
        "[free_proc] Allocations still owned by pid {pid}:"
    ));
    let b = pos(&format!(
        "[free_all_tracked] Force freeing leftover allocations for pid={pid}"
    ));
    let c = pos(&format!("==== ALLOCS for pid={pid} ===="));
    let d = pos(&format!("==== END of list - ALLOCS for pid={pid} ===="));
    assert!(
        a < b && b < c && c + 1 == d,
        "order/empty list wrong:\n{out}"
    );
    let freed: Vec<&str> = lines[b + 1..c].to_vec();
    assert_eq!(
        freed.len(),
        nallocs,
        "one freeing line per allocation:\n{out}"
    );
    let mut pages = 0;
    for l in freed {
        assert!(
            l.starts_with(" freeing leak: pa=0x8") && l.ends_with(" tag=alloc_pages = destroyed"),
            "{l:?}"
        );
        pages += num(l, "npages");
    }
    assert_eq!(pages, 5);

    // Debug off: the report is gone.
    q.run("debug off", T);
    let quiet = q.run("leak 3", T);
    assert!(!quiet.contains("freeing leak"), "{quiet}");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn exit_sweeps_keep_page_counts_exact() {
    let mut q = Qemu::boot();
    let before = mem(&mut q);
    q.run("leak 10", T);
    let churn = q.run("churn", Duration::from_secs(60));
    assert!(churn.contains("churn: pid="), "{churn}");

    for _ in 0..20 {
        q.send_line("leak 50 &");
    }
    // Every background leak reports and is reaped by the shell ("[pid] done").
    let mut pids = BTreeSet::new();
    let mut reaped = BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while reaped.len() < 20 || !pids.is_subset(&reaped) {
        assert!(
            std::time::Instant::now() < deadline,
            "background leaks not all reaped: {pids:?} {reaped:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        let text = q.output();
        for l in text.lines() {
            if let Some(rest) = l.split("leak: pid=").nth(1) {
                if l.contains("allocated 50 pages") {
                    pids.insert(rest.split(' ').next().unwrap().parse::<u64>().unwrap());
                }
            }
            if let Some(p) = l
                .split('[')
                .nth(1)
                .and_then(|r| r.strip_suffix("] done, exit 0"))
            {
                reaped.insert(p.parse::<u64>().unwrap());
            }
        }
        q.send_line(""); // another prompt: the shell reaps before printing it
    }
    assert_eq!(pids.len(), 20, "{pids:?}");
    // Drain to a quiet prompt.
    std::thread::sleep(Duration::from_millis(500));
    q.run("hello", T);

    let after = mem(&mut q);
    assert_eq!(
        after.free, before.free,
        "free pages changed across exit sweeps"
    );
    assert_eq!(after.allocs, before.allocs);
    assert_eq!(after.tracked, before.tracked);
    assert!(
        after.owners.iter().all(|o| o.1 != "<dead>"),
        "entries owned by dead pids: {:?}",
        after.owners
    );

    // Every owner in the kernel's table is the kernel, a live process, or `allocs` itself.
    let allocs = q.run("allocs", T);
    let live = ps_pids(&mut q);
    let owners: BTreeSet<u64> = allocs
        .lines()
        .filter(|l| l.starts_with("PA="))
        .map(|l| num(l, "owner"))
        .collect();
    let me = num(
        allocs
            .lines()
            .find(|l| l.starts_with("allocs: pid="))
            .expect("allocs pid line"),
        "pid",
    );
    for o in &owners {
        assert!(
            *o == 0 || *o == me || live.contains(o),
            "owner {o} is not alive (ps: {live:?})"
        );
    }
    for p in &pids {
        assert!(!owners.contains(p), "dead leak pid {p} still owns pages");
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn bad_pointers_and_invalid_frees_are_refused() {
    let mut q = Qemu::boot();
    let out = q.run("badptr", T);
    assert!(!out.contains("ACCEPTED"), "{out}");
    assert!(out.contains("badptr: all 30 bad calls refused"), "{out}");
    assert!(out.contains("badptr: write(kernel) -> -2 EFAULT"), "{out}");
    // Page counts so large that the range wraps around are bad arguments, not a size mismatch.
    for n in ["2^64-1", "2^63"] {
        let line = format!("badptr: free_pages(own page, {n} pages) -> -1 EINVAL");
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }

    let before = mem(&mut q);
    let out = q.run("badfree", T);
    assert!(out.contains("badfree: ok"), "{out}");
    for reason in ["wrong_size", "untracked", "double_free", "not_owner"] {
        assert!(
            out.contains(&format!(": {reason}")),
            "kernel did not report {reason}:\n{out}"
        );
    }
    let after = mem(&mut q);
    assert_eq!(after.free, before.free);
    // The kernel lives on.
    assert!(q.run("hello", T).contains("Hello from pid"));
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn full_table_fails_cleanly() {
    let mut q = Qemu::boot();
    let before = mem(&mut q);
    let out = q.run("fill", Duration::from_secs(60));
    let line = out
        .lines()
        .find(|l| l.starts_with("fill: pid="))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.ends_with("then ETABLEFULL"), "{line}");
    let n: u64 = line
        .split("allocated ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 8000 && n < 8192, "{line}");
    assert!(out.contains("fill: retry -> ETABLEFULL"), "{out}");
    assert_eq!(
        out.matches("[tracker] alloc_table full").count(),
        1,
        "{out}"
    );

    let after = mem(&mut q);
    assert_eq!(
        after.free, before.free,
        "pages lost after the table filled up"
    );
    assert_eq!(after.allocs, before.allocs);
    let summary = q.run("mem", T);
    assert!(summary.contains("failed_allocs=2"), "{summary}");

    // Again: the console says it only once per boot, and everything still works.
    let again = q.run("fill", Duration::from_secs(60));
    assert!(again.contains("then ETABLEFULL"), "{again}");
    assert!(!again.contains("[tracker] alloc_table full"), "{again}");
    assert!(q.run("hello", T).contains("Hello from pid"));
    assert_eq!(mem(&mut q).free, before.free);
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn faulting_and_spinning_processes_do_not_stop_the_kernel() {
    let mut q = Qemu::boot();
    let before = mem(&mut q);
    let out = q.run("crash", T);
    let pid = num(
        out.lines()
            .find(|l| l.starts_with("crash: pid="))
            .unwrap_or_else(|| panic!("{out}")),
        "pid",
    );
    assert!(
        out.contains(&format!("[trap] pid {pid} killed: scause=0xf stval=0x0")),
        "{out}"
    );
    assert!(out.contains("shell: crash exited with -1"), "{out}");
    assert!(!out.contains("still alive"), "{out}");
    assert_eq!(
        mem(&mut q).free,
        before.free,
        "a killed process leaked pages"
    );

    // A process that never makes a syscall is preempted by the timer: the shell still answers.
    let bg = q.run("spin 1000 &", T);
    let spin: u64 = bg
        .split('[')
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{bg}"));
    assert!(q.run("hello", T).contains("Hello from pid"));
    let ps = q.run("ps", T);
    assert!(
        ps.lines().any(|l| l.starts_with(&format!("{spin} "))
            && l.contains("spin")
            && !l.contains("zombie")),
        "spin is not alive:\n{ps}"
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn a_shell_that_fails_to_start_is_retried_until_it_starts() {
    // The kernel command line makes the first three attempts to start the shell fail.
    let mut q = Qemu::start(&["-append", "fail_shell_starts=3"]);
    let boot = q.expect("$ ", Duration::from_secs(30));
    for line in [
        "[proc] fault injection: the next 3 attempt(s) to start the shell fail",
        "[proc] cannot start the shell: ENOMEM; retrying every 100 ms",
        "[proc] started the shell (pid 1)",
        "Leakscope shell",
    ] {
        assert!(boot.contains(line), "missing {line:?} in:\n{boot}");
    }
    assert_eq!(
        boot.matches("cannot start the shell").count(),
        1,
        "the failure is reported once, not at every retry:\n{boot}"
    );
    assert!(q.run("hello", T).contains("Hello from pid 2!"));

    // The shell exits: the kernel starts the next one at once, with the same pages.
    let before = mem(&mut q);
    q.send_line("exit 3");
    q.expect(
        "[proc] the shell (pid 1) exited with 3; starting a new one",
        T,
    );
    q.expect("$ ", T);
    let after = mem(&mut q);
    assert_eq!(
        after.free, before.free,
        "pages lost across the shell's exit"
    );
    assert_eq!(
        (after.allocs, after.tracked),
        (before.allocs, before.tracked)
    );
    assert!(
        after.owners.iter().all(|o| o.1 != "<dead>"),
        "{:?}",
        after.owners
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn sysfuzz_leaves_the_kernel_running_and_the_page_count_exact() {
    let mut q = Qemu::boot();
    let before = mem(&mut q);
    let start = std::time::Instant::now();
    let out = q.run("sysfuzz 20000 7", Duration::from_secs(120));
    let took = start.elapsed();
    let line = out
        .lines()
        .find(|l| l.starts_with("sysfuzz: ") && l.ends_with(" errors"))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    let children = out
        .lines()
        .find(|l| l.starts_with("sysfuzz: pid="))
        .unwrap_or_else(|| panic!("no children line:\n{out}"));
    assert!(
        num_before(children, " children") > 0 && num_before(children, " of them fuzzing") > 0,
        "{children}"
    );
    let calls: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let errors = num_before(line, " errors");
    eprintln!("{line} in {took:?}");
    assert!(calls >= 20_000, "{line}");
    assert!(
        errors > calls / 3 && errors < calls,
        "most hostile calls must fail, the valid ones succeed: {line}"
    );
    assert!(!out.contains("[kernel panic]"), "{out}");
    assert!(
        !out.contains("[trap] pid"),
        "a fuzzing process faulted:\n{out}"
    );
    assert!(
        took < Duration::from_secs(60),
        "sysfuzz 20000 took {took:?}"
    );
    // The kernel lives on, with exactly the pages it had.
    assert!(q.run("hello", T).contains("Hello from pid"));
    let after = mem(&mut q);
    assert_eq!(after.free, before.free, "pages lost to the fuzzing");
    assert_eq!(
        (after.allocs, after.tracked),
        (before.allocs, before.tracked)
    );
    assert!(
        after.owners.iter().all(|o| o.1 != "<dead>"),
        "{:?}",
        after.owners
    );
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn allocbench_times_its_pairs_and_gives_every_page_back() {
    let mut q = Qemu::boot();
    let before = mem(&mut q);
    let out = q.run("allocbench 2000", Duration::from_secs(120));
    let line = out
        .lines()
        .find(|l| l.starts_with("allocbench: "))
        .unwrap_or_else(|| panic!("no allocbench line:\n{out}"));
    let us: u64 = line
        .strip_prefix("allocbench: 2000 pairs in ")
        .and_then(|rest| rest.strip_suffix(" us"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not `allocbench: 2000 pairs in T us`: {line:?}"));
    eprintln!("{line} ({} ns per pair)", us * 1000 / 2000);
    assert!(us > 0, "{line}");
    // Every page allocated was freed: the counts are what they were.
    let after = mem(&mut q);
    assert_eq!(after.free, before.free, "pages lost to allocbench");
    assert_eq!(
        (after.allocs, after.tracked),
        (before.allocs, before.tracked)
    );
}

/// The number just before `suffix` in `line` (`… 123 errors`).
fn num_before(line: &str, suffix: &str) -> u64 {
    let head = &line[..line
        .find(suffix)
        .unwrap_or_else(|| panic!("no {suffix:?} in {line:?}"))];
    head.rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {suffix:?} in {line:?}"))
}

/// The boot ticket and the late harts' count and door live in `.data`: the boot hart clears
/// the BSS after taking the ticket, and a hart that firmware sends to `_start` meanwhile must
/// still find the ticket taken (else it boots a second kernel) and its count kept.
#[test]
#[ignore = "needs build/kernel.elf (make kernel): make test runs it"]
fn the_boot_ticket_survives_the_bss_clearing() {
    use object::{Object, ObjectSection, ObjectSymbol};
    let bytes = std::fs::read(common::qemu::kernel_elf()).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    for part in ["BOOT_TICKET", "hart4LATE", "hart9DOOR_OPEN"] {
        let sym = elf
            .symbols()
            .find(|s| s.name().is_ok_and(|n| n.contains(part)))
            .unwrap_or_else(|| panic!("no symbol {part} in the kernel"));
        let section = elf.section_by_index(sym.section_index().unwrap()).unwrap();
        assert_eq!(section.name().unwrap(), ".data", "{part}");
    }
}
