//! Benchmark: the kernel's allocator on several harts. `allocbench N` (N one-page alloc+free
//! pairs, timed by the kernel) run alone on a 1-hart guest, alone on a 2-hart guest, and as two
//! copies at once on a 2-hart guest (`allocbench N & allocbench N &`); prints the aggregate pairs
//! per second (all copies' pairs over the longest copy's time) and where the time went: the
//! kernel's per-lock counters (`lockstat`, differences over the run): acquisitions, contended
//! ones, and the time acquirers waited, as a share of the copies' summed run time.
//!
//! Run with `make bench`, or after `make kernel`:
//! `cargo bench -p inspector --bench lock_cost` (`LOCK_BENCH_PAIRS`, `LOCK_BENCH_ROUNDS`
//! override the defaults).

#[path = "../tests/common/qemu.rs"]
mod qemu;

use qemu::Qemu;
use std::collections::BTreeMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// One lock's counters: (acquired, contended, wait_us), by name.
type Locks = BTreeMap<String, (u64, u64, u64)>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `lockstat`'s lines, parsed.
fn lockstat(q: &mut Qemu) -> Locks {
    let out = q.run("lockstat", T);
    let mut locks = Locks::new();
    for line in out.lines().filter(|l| l.starts_with("lock=")) {
        let field = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        let name = line.split_whitespace().next().unwrap()["lock=".len()..].to_string();
        locks.insert(
            name,
            (field("acquired="), field("contended="), field("wait_us=")),
        );
    }
    assert!(!locks.is_empty(), "no lockstat lines in {out}");
    locks
}

/// `allocbench: N pairs in T us` → T.
fn micros(line: &str) -> u64 {
    line.split(" in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"))
}

/// `copies` × `allocbench pairs` at once; each copy's µs, and the lock counters' differences.
fn run(q: &mut Qemu, copies: usize, pairs: u64) -> (Vec<u64>, Locks) {
    let before = lockstat(q);
    let mut times = Vec::new();
    if copies == 1 {
        let out = q.run(&format!("allocbench {pairs}"), T);
        let line = out.lines().find(|l| l.starts_with("allocbench: ")).unwrap();
        times.push(micros(line));
    } else {
        for _ in 0..copies {
            q.send_line(&format!("allocbench {pairs} &"));
            q.expect("running in the background", T);
        }
        while times.len() < copies {
            let text = q.expect(" us\n", T);
            let line = text
                .lines()
                .rev()
                .find(|l| l.contains("allocbench: "))
                .unwrap_or_else(|| panic!("no allocbench line in {text}"));
            let at = line.find("allocbench: ").unwrap();
            times.push(micros(&line[at..]));
        }
        // Let both exits and the shell's prompt settle before the next lockstat.
        std::thread::sleep(Duration::from_millis(300));
        q.run("echo settled", T);
    }
    let after = lockstat(q);
    let diff = after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            (name.clone(), (a.0 - b.0, a.1 - b.1, a.2 - b.2))
        })
        .collect();
    (times, diff)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let pairs = env_or("LOCK_BENCH_PAIRS", 5000);
    let rounds = env_or("LOCK_BENCH_ROUNDS", 3) as usize;
    println!("allocbench {pairs} pairs per copy, {rounds} rounds each (median)\n");
    println!(
        "{:<26} {:>12} {:>10}  lock: contended/acquired, waited (µs)",
        "configuration", "pairs/s", "lock wait"
    );
    let mut base = None;
    for (harts, copies) in [(1u32, 1usize), (2, 1), (2, 2)] {
        let smp = harts.to_string();
        let mut q = Qemu::start(&["-smp", &smp]);
        q.expect("$ ", T);
        q.run("allocbench 500", T); // warm-up: the program loaded, the caches filled
        let mut rates = Vec::new();
        let mut shares = Vec::new();
        let mut last = Locks::new();
        for _ in 0..rounds {
            let (times, locks) = run(&mut q, copies, pairs);
            let longest = *times.iter().max().unwrap();
            rates.push((copies as u64 * pairs) as f64 / (longest.max(1) as f64 / 1e6));
            let waited: u64 = locks.values().map(|l| l.2).sum();
            shares.push(waited as f64 / times.iter().sum::<u64>().max(1) as f64);
            last = locks;
        }
        let rate = median(rates);
        let per_lock: Vec<String> = last
            .iter()
            .filter(|(_, l)| l.0 > 0)
            .map(|(n, l)| format!("{n} {}/{} {}", l.1, l.0, l.2))
            .collect();
        println!(
            "{:<26} {:>12.0} {:>9.1}%  {}{}",
            format!("{harts} hart(s), {copies} cop(ies)"),
            rate,
            median(shares) * 100.0,
            per_lock.join(" · "),
            match base {
                Some(b) => format!("  (×{:.2} of 1 hart)", rate / b),
                None => String::new(),
            }
        );
        base.get_or_insert(rate);
    }
}
