//! Benchmark: what observing the kernel costs it, reading the tracker from guest RAM (QEMU's
//! shared memory file, no halt) beside reading it through the stub (halted), in one run.
//!
//! Part 1, per snapshot: host time of a RAM read (the guest never waits) and the guest's pause
//! for a stub read, for an unchanged table, a table `churn` is changing, and a full table
//! (`fill`, re-read whole each time).
//! Part 2, the guest's own view: `allocbench N` (N alloc+free pairs timed by the kernel) not
//! observed, observed through the stub at 10 Hz, and through the RAM file at 60 Hz, paired
//! within rounds (see `main`).
//!
//! Run with `make bench` (needs build/kernel.elf and QEMU, which `make bench` provides).

#[path = "../tests/common/qemu.rs"]
mod qemu;

use inspector::source::{LiveSource, RamSource, Source};
use qemu::{kernel_elf, test_ram_file, Qemu};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<u64>) -> (u64, u64, usize) {
    assert!(!v.is_empty(), "no samples");
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 9 / 10], v.len())
}

/// (host µs of RAM reads, guest pause µs of stub reads) over `n` rounds; `reset` makes every
/// read take the table whole.
fn round(
    ram: &mut RamSource,
    stub: &mut LiveSource,
    n: usize,
    reset: bool,
) -> (Vec<u64>, Vec<u64>) {
    let (mut host, mut pause) = (Vec::new(), Vec::new());
    for _ in 0..n {
        if reset {
            ram.forget(); // the next read takes the whole table (the file stays mapped)
        }
        let start = Instant::now();
        let s = ram.sample().expect("RAM snapshot");
        let took = start.elapsed().as_nanos() as u64;
        if !s.mid_change {
            host.push(took);
        }
        if reset {
            stub.reconnect().expect("reattach");
        }
        pause.push(stub.sample().expect("stub snapshot").pause_us * 1000);
        std::thread::sleep(Duration::from_millis(5));
    }
    (host, pause)
}

fn row(name: &str, (host, pause): (Vec<u64>, Vec<u64>)) {
    let (h, h90, n) = median(host);
    let (p, p90, _) = median(pause);
    println!(
        "{name:<34} {n:>6} {:>11.1} {:>9.1} {:>14.1} {:>9.1}",
        h as f64 / 1000.0,
        h90 as f64 / 1000.0,
        p as f64 / 1000.0,
        p90 as f64 / 1000.0
    );
}

/// One `allocbench n`; the kernel's timing in µs.
fn allocbench(q: &mut Qemu, n: u64) -> u64 {
    let out = q.run(&format!("allocbench {n}"), Duration::from_secs(120));
    let line = out
        .lines()
        .find(|l| l.starts_with("allocbench: "))
        .unwrap_or_else(|| panic!("no allocbench line in {out}"));
    line.split(" in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"))
}

/// What one observer did: snapshots taken, the guest's total pause (stub reads), the observer
/// thread's own CPU time (what it can take from the guest on a host with no spare core), and
/// how long it ran.
#[derive(Default)]
struct Observed {
    snapshots: u64,
    failed: u64,
    pause: Duration,
    cpu: Duration,
    wall: Duration,
}

impl std::ops::AddAssign for Observed {
    fn add_assign(&mut self, o: Observed) {
        self.snapshots += o.snapshots;
        self.failed += o.failed;
        self.pause += o.pause;
        self.cpu += o.cpu;
        self.wall += o.wall;
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `source` every `every` on a thread until the returned flag is raised.
fn observe(
    mut source: Box<dyn Source + Send>,
    every: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Observed>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut seen = Observed::default();
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        while !flag.load(Ordering::Relaxed) {
            // A first read that finds the tracker changing for longer than the live bound has
            // no earlier state to fall back on: an error, counted; the next read tries again.
            match source.sample() {
                Ok(snap) => {
                    seen.pause += Duration::from_micros(snap.pause_us);
                    seen.snapshots += 1;
                }
                Err(_) => seen.failed += 1,
            }
            std::thread::sleep(every);
        }
        (seen.cpu, seen.wall) = (thread_cpu() - cpu0, wall0.elapsed());
        source.finish().expect("detach");
        seen
    });
    (stop, handle)
}

fn main() {
    let elf = kernel_elf();
    let ram_path = test_ram_file("bench");
    let mut q = Qemu::boot_with_ram(&ram_path);
    let gdb = format!("127.0.0.1:{}", q.gdb_port());
    let mut ram = RamSource::open(&elf, &ram_path, None).expect("RAM file");
    let mut stub = LiveSource::connect(&elf, &gdb).expect("attach");
    ram.sample().expect("first");
    stub.sample().expect("first");

    println!(
        "observing cost against QEMU ({}), microseconds",
        elf.display()
    );
    println!(
        "{:<34} {:>6} {:>11} {:>9} {:>14} {:>9}",
        "scenario", "n", "RAM host", "p90", "stub pause", "p90"
    );
    row("unchanged table", round(&mut ram, &mut stub, 200, false));
    q.send_line("churn 20000 &");
    std::thread::sleep(Duration::from_millis(200));
    row(
        "churn (changes followed)",
        round(&mut ram, &mut stub, 200, false),
    );
    q.expect("churn: ", Duration::from_secs(180));
    q.send_line("fill 30 &");
    q.expect("fill: retry", Duration::from_secs(60));
    let full = ram.sample().expect("snapshot").header.count;
    row(
        &format!("full table ({full} entries, whole)"),
        round(&mut ram, &mut stub, 40, true),
    );
    stub.finish().expect("detach");
    drop(ram);
    // Let fill's exit sweep finish before timing the guest.
    std::thread::sleep(Duration::from_secs(32));
    q.run("mem", Duration::from_secs(30));

    // The guest's own view. On a shared 2-core host the kernel's speed drifts by tens of per
    // cent from one run to the next, far more than observing costs, so the conditions are
    // paired: each round runs all three back to back (in a rotating order), and what is
    // reported is the median over rounds of observed/unobserved within the round.
    // More rounds narrow the median; LEAKSCOPE_BENCH_ROUNDS sets how many.
    let rounds = std::env::var("LEAKSCOPE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let n = 5_000;
    println!(
        "\nallocbench {n} (alloc+free pairs), kernel-timed; {rounds} rounds, the three conditions \
         back to back in each (rotating order)"
    );
    allocbench(&mut q, n); // warm-up, not counted
    let (mut quiet, mut stub_ratio, mut ram_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stub_seen, mut ram_seen) = (Observed::default(), Observed::default());
    for r in 0..rounds {
        let mut times = [0u64; 3]; // not observed, stub at 10 Hz, RAM at 60 Hz
        for k in 0..3 {
            let which = (r + k) % 3;
            times[which] = match which {
                0 => allocbench(&mut q, n),
                1 => {
                    let (stop, h) = observe(
                        Box::new(LiveSource::connect(&elf, &gdb).expect("attach")),
                        Duration::from_millis(100),
                    );
                    let t = allocbench(&mut q, n);
                    stop.store(true, Ordering::Relaxed);
                    stub_seen += h.join().unwrap();
                    t
                }
                _ => {
                    let (stop, h) = observe(
                        Box::new(RamSource::open(&elf, &ram_path, None).expect("RAM file")),
                        Duration::from_micros(16_667),
                    );
                    let t = allocbench(&mut q, n);
                    stop.store(true, Ordering::Relaxed);
                    ram_seen += h.join().unwrap();
                    t
                }
            };
        }
        quiet.push(times[0]);
        // Ratios in parts per million, so the median helper (integers) serves.
        stub_ratio.push(times[1] * 1_000_000 / times[0].max(1));
        ram_ratio.push(times[2] * 1_000_000 / times[0].max(1));
    }
    let (q_med, _, _) = median(quiet.clone());
    let (q_min, q_max) = (quiet.iter().min().unwrap(), quiet.iter().max().unwrap());
    println!(
        "{:<34} {:>10} us  (rounds ranged {q_min}..{q_max} us)",
        "not observed, median", q_med
    );
    let show = |name: &str, ratios: Vec<u64>, seen: &Observed| {
        let mut sorted = ratios.clone();
        sorted.sort_unstable();
        let pct = |ppm: u64| (ppm as f64 / 10_000.0) - 100.0;
        let share = |d: Duration| 100.0 * d.as_secs_f64() / seen.wall.as_secs_f64().max(1e-9);
        println!(
            "{name:<34} {:+.2} % median slowdown (quartiles {:+.2} .. {:+.2} %); {} snapshots, {} failed",
            pct(sorted[sorted.len() / 2]),
            pct(sorted[sorted.len() / 4]),
            pct(sorted[sorted.len() * 3 / 4]),
            seen.snapshots,
            seen.failed,
        );
        println!(
            "{:<34} guest halted {:.3} % of the time; observer used {:.3} % of one host core",
            "",
            share(seen.pause),
            share(seen.cpu),
        );
    };
    show("observed through the stub, 10 Hz", stub_ratio, &stub_seen);
    show("observed through RAM, 60 Hz", ram_ratio, &ram_seen);
    println!(
        "(the kernel's own timing swings with the host's load; what observing can take from it \
         is bounded by the halted share plus the observer's CPU share on a host with no spare core)"
    );
}
