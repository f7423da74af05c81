//! What serving gdb through the inspector costs gdb: the same two gdb-multiarch workloads
//! (`stepi` 1000 times; a 64 KiB `x` dump), 7 rounds each, straight to QEMU's gdbstub and
//! through `inspector watch --serve` (sampling every 200 ms meanwhile), rounds alternating, in
//! one run on one QEMU, and per workload the ratio of the medians. Target: under 1.2× for each.
//!
//! gdb steps with `set scheduler-locking step`: the stepped hart alone runs. Otherwise another
//! hart can hit the step's breakpoint first, and the stepped one is stopped wherever it is,
//! inside OpenSBI, say. gdb then steps on from there, up to an `mret` it cannot follow (its
//! software single step puts the breakpoint after it), and waits forever, straight to QEMU
//! or through the inspector alike.
//!
//! Run: `make bench`, or after `make kernel`:
//! `cargo bench -p inspector --bench proxy_cost`.

#[path = "../tests/common/qemu.rs"]
mod qemu;

use qemu::{free_port, kernel_elf, Qemu};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 7;
const STEPS: usize = 1000;

/// Runs both workloads through `addr` and returns how long gdb took for each (`stepi`, `x`;
/// connect and exit excluded: each is timed by gdb's own clock around its command).
fn workload(addr: &str) -> (Duration, Duration) {
    let script = std::env::temp_dir().join(format!("proxy-cost-{}.gdb", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "set pagination off\n\
             set confirm off\n\
             set scheduler-locking step\n\
             python import time; t0 = time.monotonic()\n\
             stepi {STEPS}\n\
             python t1 = time.monotonic()\n\
             x/8192gx 0x80200000\n\
             python print('WORKLOAD_SECONDS', t1 - t0, time.monotonic() - t1)\n\
             detach\n"
        ),
    )
    .unwrap();
    let out = Command::new("gdb-multiarch")
        .args(["-batch", "-nx"])
        .arg(kernel_elf())
        .args(["-ex", &format!("target remote {addr}")])
        .arg("-x")
        .arg(&script)
        .output()
        .expect("run gdb-multiarch (make setup)");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("WORKLOAD_SECONDS "))
        .unwrap_or_else(|| {
            panic!(
                "gdb did not finish the workload:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    (
        Duration::from_secs_f64(secs[0]),
        Duration::from_secs_f64(secs[1]),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `inspector watch --serve` in front of the stub, once its port listens.
fn start_watch(stub: &str, serve: &str) -> Child {
    let watch = Command::new(env!("CARGO_BIN_EXE_inspector"))
        .args(["watch", "--interval", "200ms", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", stub, "--serve", serve])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // The port listens once the file descriptor is bound; /proc tells without connecting.
    while !listening(serve) {
        assert!(start.elapsed() < Duration::from_secs(20), "no --serve port");
        std::thread::sleep(Duration::from_millis(50));
    }
    watch
}

/// Stops `watch` as Ctrl-C would (it detaches from the stub) and waits for it to exit.
fn stop_watch(mut watch: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status();
    let _ = watch.wait();
}

fn main() {
    let q = Qemu::boot();
    let stub = format!("127.0.0.1:{}", q.gdb_port());
    let serve = format!("127.0.0.1:{}", free_port());
    // Rounds alternate direct and proxied (the stub takes one client: the inspector runs only
    // for its rounds), so a load that comes and goes on the machine weighs on both alike.
    let mut direct = Vec::new();
    let mut proxied = Vec::new();
    for _ in 0..ROUNDS {
        direct.push(workload(&stub));
        let watch = start_watch(&stub, &serve);
        proxied.push(workload(&serve));
        stop_watch(watch);
    }

    for (name, pick) in [(format!("stepi {STEPS}"), 0), ("x 64 KiB".to_string(), 1)] {
        let part = |v: &[(Duration, Duration)]| {
            median(
                v.iter()
                    .map(|&(s, x)| if pick == 0 { s } else { x })
                    .collect(),
            )
        };
        let (d, p) = (part(&direct), part(&proxied));
        println!(
            "proxy_cost: {name}, median of {ROUNDS}: direct {:.1} ms, through the inspector \
             {:.1} ms, ratio {:.2}x (target < 1.2x)",
            d.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3,
            p.as_secs_f64() / d.as_secs_f64()
        );
    }
}

/// True if something listens on `addr`'s port (read from /proc/net/tcp).
fn listening(addr: &str) -> bool {
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let key = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&key) && f[3] == "0A"
        })
}
