//! What serving gdb through the inspector costs gdb: the same gdb-multiarch workload (`stepi`
//! 1000 times, then a 64 KiB `x` dump, 5 times) straight to QEMU's gdbstub and through
//! `inspector watch --serve` (sampling every 200 ms meanwhile), in one run on one QEMU, and the
//! ratio of the medians. Target: under 1.2×.
//!
//! Run: `make bench`, or after `make kernel`:
//! `cargo bench -p inspector --bench proxy_cost`.

#[path = "../tests/common/qemu.rs"]
mod qemu;

use qemu::{free_port, kernel_elf, Qemu};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const STEPS: usize = 1000;

/// Runs the workload through `addr` and returns how long gdb took for it (connect and exit
/// excluded: the workload is timed from the first to the last command by gdb's own clock).
fn workload(addr: &str) -> Duration {
    let script = std::env::temp_dir().join(format!("proxy-cost-{}.gdb", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "set pagination off\n\
             set confirm off\n\
             python import time; t0 = time.monotonic()\n\
             stepi {STEPS}\n\
             x/8192gx 0x80200000\n\
             python print('WORKLOAD_SECONDS', time.monotonic() - t0)\n\
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
        .stderr(Stdio::null())
        .output()
        .expect("run gdb-multiarch (make setup)");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("WORKLOAD_SECONDS "))
        .unwrap_or_else(|| panic!("gdb did not finish the workload:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(secs)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let q = Qemu::boot();
    let stub = format!("127.0.0.1:{}", q.gdb_port());
    let direct: Vec<_> = (0..ROUNDS).map(|_| workload(&stub)).collect();

    let serve = format!("127.0.0.1:{}", free_port());
    let mut watch = Command::new(env!("CARGO_BIN_EXE_inspector"))
        .args(["watch", "--interval", "200ms", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", &stub, "--serve", &serve])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // The port listens once the file descriptor is bound; /proc tells without connecting.
    while !listening(&serve) {
        assert!(start.elapsed() < Duration::from_secs(20), "no --serve port");
        std::thread::sleep(Duration::from_millis(50));
    }
    let proxied: Vec<_> = (0..ROUNDS).map(|_| workload(&serve)).collect();
    let _ = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status();
    let _ = watch.wait();

    let (d, p) = (median(direct), median(proxied));
    println!(
        "proxy_cost: stepi {STEPS} + x 64 KiB, median of {ROUNDS}: direct {:.1} ms, through the \
         inspector {:.1} ms, ratio {:.2}x (target < 1.2x)",
        d.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        p.as_secs_f64() / d.as_secs_f64()
    );
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
