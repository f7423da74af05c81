//! SIGTERM, SIGHUP and SIGINT at random-ish moments, as `timeout`, a closed terminal or tmux
//! pane, a service manager or Ctrl-C deliver them, against the real kernel in QEMU: `break
//! track_alloc` while the console allocates (hits arriving, the guest halted at some of them),
//! `watch` while the console allocates, `step` while it steps through an exit sweep, and
//! `snapshot`. After each signal the command must exit by itself, and the guest must run with no
//! breakpoint left: a console command (which spawns a process, so allocates through
//! `track_alloc`) answers, then a fresh `snapshot` attaches.
//!
//! Each test boots its own QEMU (killed by pid on drop); trials share it, one after another.
//! Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test signals_qemu -- --include-ignored`.

mod common;

use common::cli::{snapshot, BIN};
use common::qemu::{kernel_elf, Qemu};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

const SIGNALS: [(i32, &str); 3] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
];

/// Delays from "ready" to the signal, per trial: the first lands at once, the others spread
/// over the time the console command keeps the inspector busy; a little jitter from the clock.
fn delays(trials: usize, span_ms: u64) -> Vec<Duration> {
    let jitter = Instant::now().elapsed().subsec_nanos() as u64 % 37
        + std::process::id() as u64 % 23
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros() as u64
            % 41;
    (0..trials as u64)
        .map(|i| Duration::from_millis(i * span_ms / trials as u64 + (jitter * (i + 1)) % 60))
        .collect()
}

/// A running inspector command with its output lines on channels.
struct Running {
    child: Child,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    err_all: Vec<String>,
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn start(q: &Qemu, args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--elf")
        .arg(kernel_elf())
        .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    Running {
        child,
        out,
        err,
        err_all: Vec::new(),
    }
}

impl Running {
    /// Waits for a stderr line containing `marker` (`; waiting`: the breakpoint is armed).
    fn wait_stderr(&mut self, marker: &str) {
        let deadline = Instant::now() + T;
        while Instant::now() < deadline {
            if let Ok(l) = self.err.recv_timeout(Duration::from_millis(50)) {
                let hit = l.contains(marker);
                self.err_all.push(l);
                if hit {
                    return;
                }
            }
        }
        panic!("no `{marker}` on stderr within {T:?}: {:?}", self.err_all);
    }

    /// Waits for the first stdout line.
    fn wait_stdout(&mut self) {
        if self.out.recv_timeout(T).is_err() {
            panic!("no output within {T:?}; stderr: {:?}", self.stderr());
        }
    }

    fn stderr(&mut self) -> Vec<String> {
        self.err_all.extend(self.err.try_iter());
        self.err_all.clone()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill failed");
    }

    /// Waits for the process to exit; panics (after killing it) if it takes over `limit`.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return (s, start.elapsed());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the inspector did not exit within {limit:?} of the signal; stderr: {:?}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The guest runs with no breakpoint of ours left: a new process (allocations through
/// `track_alloc`) runs and prints, and a fresh `snapshot` attaches and detaches.
fn assert_guest_runs(q: &mut Qemu, what: &str) {
    q.send_line("mem");
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.expect("pages total=", T);
        q.expect("$ ", T)
    }));
    assert!(
        out.is_ok(),
        "{what}: the guest no longer answers on its console (halted, or stopped at a \
         breakpoint left behind)"
    );
    let snap = snapshot(q);
    assert!(snap["count"].as_u64().unwrap() > 0, "{what}: {snap}");
}

/// Signals a process that has its handler installed must end cleanly, not by the signal.
fn assert_clean_exit(status: ExitStatus, took: Duration, what: &str, stderr: &[String]) {
    assert_eq!(
        status.signal(),
        None,
        "{what}: killed by the signal instead of handling it; stderr: {stderr:?}"
    );
    assert!(status.success(), "{what}: {status}; stderr: {stderr:?}");
    assert!(
        took < Duration::from_secs(5),
        "{what}: took {took:?} to exit"
    );
}

const TRIALS: usize = 5;

#[test]
#[ignore = "boots QEMU: run with make test"]
fn break_detaches_on_every_signal() {
    let mut q = Qemu::boot();
    for (sig, name) in SIGNALS {
        for (i, delay) in delays(TRIALS, 700).into_iter().enumerate() {
            let what = format!("break, {name} after {delay:?} (trial {i})");
            let mut r = start(
                &q,
                &[
                    "break",
                    "track_alloc",
                    "--count",
                    "1000",
                    "--timeout",
                    "60s",
                    "--json",
                ],
            );
            r.wait_stderr("; waiting");
            // Allocations: each one a hit that halts the guest until the inspector continues.
            q.send_line("leak 40");
            std::thread::sleep(delay);
            r.signal(sig);
            let (status, took) = r.wait_exit(T);
            let hits = r.out.try_iter().count();
            eprintln!("{what}: exited after {took:?}, {hits} hits printed");
            q.expect("leak", T);
            assert_guest_runs(&mut q, &what);
            assert_clean_exit(status, took, &what, &r.stderr());
        }
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn watch_detaches_on_every_signal() {
    let mut q = Qemu::boot();
    for (sig, name) in SIGNALS {
        for (i, delay) in delays(TRIALS, 500).into_iter().enumerate() {
            let what = format!("watch, {name} after {delay:?} (trial {i})");
            let mut r = start(&q, &["watch", "--interval", "20ms", "--summary"]);
            r.wait_stdout();
            q.send_line("leak 40");
            std::thread::sleep(delay);
            r.signal(sig);
            let (status, took) = r.wait_exit(T);
            eprintln!("{what}: exited after {took:?}");
            q.expect("leak", T);
            assert_guest_runs(&mut q, &what);
            assert_clean_exit(status, took, &what, &r.stderr());
            let last = r.out.try_iter().last().unwrap_or_default();
            assert!(last.contains("running"), "{what}: final line: {last}");
        }
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn step_detaches_on_every_signal_also_mid_step() {
    let mut q = Qemu::boot();
    for (sig, name) in SIGNALS {
        for (i, delay) in delays(TRIALS, 1500).into_iter().enumerate() {
            let what = format!("step, {name} after {delay:?} (trial {i})");
            let mut r = start(
                &q,
                &[
                    "step",
                    "--from",
                    "free_all_tracked_for_pid",
                    "--lines",
                    "100000",
                    "--timeout",
                    "60s",
                    "--json",
                ],
            );
            r.wait_stderr("; waiting");
            // The process's exit runs the sweep: stepping starts there and goes on for long.
            q.send_line("leak 30");
            std::thread::sleep(delay);
            let stepped_before = r.out.try_iter().count();
            r.signal(sig);
            let (status, took) = r.wait_exit(T);
            eprintln!("{what}: exited after {took:?}, {stepped_before} lines stepped before");
            q.expect("leak", T);
            assert_guest_runs(&mut q, &what);
            assert_clean_exit(status, took, &what, &r.stderr());
        }
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn snapshot_leaves_the_guest_running_on_every_signal() {
    let mut q = Qemu::boot();
    for (sig, name) in SIGNALS {
        for (i, delay) in delays(TRIALS, 150).into_iter().enumerate() {
            let what = format!("snapshot, {name} after {delay:?} (trial {i})");
            let mut r = start(&q, &["snapshot", "--json"]);
            std::thread::sleep(delay);
            r.signal(sig);
            let (status, took) = r.wait_exit(T);
            // A signal before the handler is installed may kill it (nothing is attached yet);
            // after, it ends by itself. Either way the guest must run.
            eprintln!("{what}: {status} after {took:?}");
            assert_guest_runs(&mut q, &what);
        }
    }
}
