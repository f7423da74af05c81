//! Many process exits in QEMU, then the exact free-page count: `exits N` starts N short-lived
//! children one after another (each leaks a few pages; some exit with a code, some fault),
//! and every exit sweep must give everything back (xv6 `usertests` countfree).
//!
//! N is `LEAKSCOPE_STRESS_EXITS`, 300 by default: `make test` runs 300, `make stress` 10,000.
//! Boots its own QEMU (killed by pid on drop) with a timeout that grows with N.

mod common;

use common::qemu::{console_field as field, Qemu};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

/// `mem`'s summary line as (free, tracked, allocs), and whether any owner is `<dead>`.
fn mem(q: &mut Qemu) -> ((u64, u64, u64), bool) {
    let out = q.run("mem", T);
    let first = out
        .lines()
        .find(|l| l.starts_with("pages total="))
        .unwrap_or_else(|| panic!("no mem summary in {out:?}"));
    (
        (
            field(first, "free"),
            field(first, "tracked"),
            field(first, "allocs"),
        ),
        out.contains("name=<dead>"),
    )
}

#[test]
#[ignore = "boots QEMU: run with make test (300 exits) or make stress (10,000)"]
fn many_exits_keep_the_free_page_count_exact() {
    let n: u64 = std::env::var("LEAKSCOPE_STRESS_EXITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut q = Qemu::boot();
    let (before, _) = mem(&mut q);
    let start = Instant::now();
    let out = q.run(
        &format!("exits {n} 6"),
        Duration::from_secs(60) + Duration::from_millis(60) * n as u32,
    );
    eprintln!("{n} exits in {:?}", start.elapsed());
    let summary = format!(
        "exits: {n} children exited, 0 failed to start, {} pages leaked",
        n * 6
    );
    assert!(
        out.contains(&summary),
        "missing {summary:?}; the end of the output:\n{}",
        &out[out.len().saturating_sub(3000)..]
    );
    assert!(
        !out.contains(" exited with "),
        "a child ended otherwise than told:\n{out}"
    );
    assert_eq!(
        out.matches("[trap] pid ").count() as u64,
        (n + 4) / 16,
        "children 11, 27, 43, … fault"
    );
    let (after, dead) = mem(&mut q);
    assert_eq!(
        after, before,
        "(free, tracked, allocs) before and after {n} exits"
    );
    assert!(!dead, "pages still owned by exited processes");
    assert!(q.run("hello", T).contains("Hello from pid"));
}
