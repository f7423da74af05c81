//! Your gdb through the inspector (`--serve`), against the kernel in QEMU with a real
//! `gdb-multiarch`: batch mode and gdb/MI (as IDEs drive it) while `watch` samples; gdb killed
//! at its own breakpoint (and the proof that its breakpoint left QEMU); a TUI-side breakpoint
//! and a gdb breakpoint at the same time; the TUI (in tmux) saying where gdb holds the guest. Every
//! test boots its own QEMU (killed by pid on drop) and bounds every wait.
//!
//! Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test serve_qemu -- --include-ignored --test-threads=2`.

mod common;

use common::cli::BIN;
use common::qemu::{free_port, kernel_elf, Qemu};
use common::tmux::Tui;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `inspector watch --json-lines --serve ADDR` on `q`; its stdout lines are collected.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    serve: String,
}

impl Watch {
    fn start(q: &Qemu) -> Watch {
        Watch::start_serving(q, &format!("127.0.0.1:{}", free_port()))
    }

    /// Like [`start`](Self::start), serving gdb on `serve`.
    fn start_serving(q: &Qemu, serve: &str) -> Watch {
        let serve = serve.to_string();
        let mut child = Command::new(BIN)
            .args(["watch", "--json-lines", "--interval", "100ms"])
            .args(["--duration", "170s", "--elf"])
            .arg(kernel_elf())
            .args(["--gdb", &format!("127.0.0.1:{}", q.gdb_port())])
            .args(["--serve", &serve])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let w = Watch {
            child,
            lines,
            serve,
        };
        // Serving once the port accepts (a connection that only opens and closes is harmless:
        // the client is detached at once).
        let start = Instant::now();
        while std::net::TcpStream::connect(&w.serve).is_err() {
            assert!(start.elapsed() < T, "watch --serve never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }

    /// Events (lines with a `seq`) seen so far.
    fn events(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v.get("seq").is_some())
            .count()
    }

    /// Waits until more than `n` events were seen.
    fn wait_events_beyond(&self, n: usize) {
        let start = Instant::now();
        while self.events() <= n {
            assert!(
                start.elapsed() < T,
                "watch saw no new event (still {n}); is it stuck?"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C, as a user would; watch must exit 0.
    fn stop(self) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "watch failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// gdb-multiarch in batch mode through `addr`, with the project's .gdbinit, as `make gdb`.
fn gdb_batch(addr: &str, commands: &[&str]) -> String {
    let mut cmd = Command::new("gdb-multiarch");
    cmd.current_dir(root())
        .args(["-batch", "-nx", "-iex", "set auto-load local-gdbinit off"])
        .args(["-x", ".gdbinit"])
        .arg(kernel_elf())
        .args(["-ex", &format!("target remote {addr}")]);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let out = cmd.output().expect("run gdb-multiarch (make setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gdb failed:\n{text}");
    text
}

/// Keeps the kernel allocating: `churn` in the background, many rounds.
fn keep_allocating(q: &mut Qemu) {
    q.send_line("churn 1000000 &");
    std::thread::sleep(Duration::from_millis(300));
}

fn assert_no_foreign_stop(gdb_output: &str) {
    for bad in ["SIGINT", "received signal", "SIGTRAP"] {
        assert!(
            !gdb_output.contains(bad),
            "gdb was told of a stop it did not cause ({bad}):\n{gdb_output}"
        );
    }
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_batch_through_the_inspector_while_watch_samples() {
    let mut q = Qemu::boot();
    let w = Watch::start(&q);
    keep_allocating(&mut q);
    w.wait_events_beyond(0);
    let out = gdb_batch(
        &w.serve,
        &[
            "break track_alloc",
            "continue",
            "bt",
            "info args",
            "finish",
            "stepi",
            "x/4gx $sp",
            "info registers pc",
            "alloc-pid 0",
            "delete",
            "detach",
        ],
    );
    assert!(out.contains("Breakpoint 1, "), "{out}");
    assert!(out.contains("track_alloc"), "{out}");
    assert!(out.contains("#1 "), "a backtrace with a caller:\n{out}");
    assert!(out.contains("owner = "), "info args:\n{out}");
    assert!(out.contains("Value returned"), "finish:\n{out}");
    assert!(out.contains("pc "), "info registers:\n{out}");
    assert!(out.contains("slot="), "alloc-pid through the proxy:\n{out}");
    assert!(out.contains("detached"), "{out}");
    assert_no_foreign_stop(&out);
    // Events go on after the session.
    let seen = w.events();
    w.wait_events_beyond(seen);
    // A second session works as the first.
    let out = gdb_batch(&w.serve, &["info registers pc", "detach"]);
    assert!(out.contains("pc "), "{out}");
    w.stop();
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_sees_one_thread_per_hart_and_switches_between_them() {
    let harts = common::qemu::smp();
    let mut q = Qemu::boot();
    let w = Watch::start(&q);
    keep_allocating(&mut q);
    let out = gdb_batch(
        &w.serve,
        &[
            "info threads",
            &format!("thread {harts}"),
            "info registers pc",
            "stepi",
            "thread 1",
            "info registers pc",
            "detach",
        ],
    );
    for h in 0..harts {
        assert!(
            out.contains(&format!("hart {h}")),
            "no hart {h}:
{out}"
        );
    }
    assert!(
        out.contains(&format!("Switching to thread {harts}")),
        "thread {harts}:
{out}"
    );
    assert!(out.contains("Switching to thread 1"), "{out}");
    assert!(out.contains("pc "), "{out}");
    assert_no_foreign_stop(&out);
    // The guest runs on after the session.
    let seen = w.events();
    w.wait_events_beyond(seen);
    w.stop();
}

/// The value gdb printed for its `n`-th history entry (`$n = 0x...`).
fn printed_hex(out: &str, n: u32) -> u64 {
    let tag = format!("${n} = 0x");
    let rest = out
        .split(&tag)
        .nth(1)
        .unwrap_or_else(|| panic!("no {tag} in:\n{out}"));
    let hex: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_reads_and_writes_csrs_and_fp_registers_through_the_inspector() {
    let mut q = Qemu::boot();
    let w = Watch::start(&q);
    keep_allocating(&mut q);
    // On hart 0 (QEMU's monitor shows CPU 0): the CSRs as QEMU's monitor prints them, and a
    // write of a CSR the kernel keeps (sscratch) read back, then put back.
    let out = gdb_batch(
        &w.serve,
        &[
            "thread 1",
            "p/x $satp",
            "p/x $sscratch",
            "set $sscratch = 0x5ca1ab1e",
            "p/x $sscratch",
            "set $sscratch = $2",
            "p/x $sscratch",
            "p $ft0",
            "monitor info registers",
            "detach",
        ],
    );
    let monitor_satp = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("satp"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap_or_else(|| panic!("no satp in the monitor's registers:\n{out}"));
    assert_eq!(printed_hex(&out, 1), monitor_satp, "{out}");
    assert_eq!(printed_hex(&out, 3), 0x5ca1_ab1e, "{out}");
    assert_eq!(
        printed_hex(&out, 4),
        printed_hex(&out, 2),
        "put back:\n{out}"
    );
    assert!(out.contains("$5 = "), "an FP register reads: {out}");
    assert_no_foreign_stop(&out);
    // A gdb without the ELF learns the machine from the description the server passes on.
    let bare = Command::new("gdb-multiarch")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("target remote {}", w.serve),
        ])
        .args(["-ex", "p/x $pc", "-ex", "p/x $satp", "-ex", "detach"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&bare.stdout).to_string() + &String::from_utf8_lossy(&bare.stderr);
    assert!(
        text.contains("$1 = 0x80") && text.contains("$2 = 0x8"),
        "{text}"
    );
    // The guest runs on after the sessions.
    let seen = w.events();
    w.wait_events_beyond(seen);
    w.stop();
}

/// gdb/MI over pipes: commands in, records out.
struct Mi {
    child: Child,
    out: Receiver<String>,
    seen: Vec<String>,
}

impl Mi {
    fn start() -> Mi {
        let mut child = Command::new("gdb-multiarch")
            .current_dir(root())
            .args(["--interpreter=mi2", "-nx", "-q"])
            .arg(kernel_elf())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run gdb-multiarch (make setup)");
        Mi {
            out: common::cli::lines_of(child.stdout.take().unwrap()),
            child,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line starting with `prefix`; fails on `^error` first.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.out.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no `{prefix}` from gdb/MI within {T:?}; saw:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            assert!(
                !line.starts_with("^error"),
                "gdb/MI error waiting for `{prefix}`: {line}"
            );
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Sends `cmd` and waits for its result record starting with `prefix`.
    fn command(&mut self, cmd: &str, prefix: &str) -> String {
        self.send(cmd);
        self.expect(prefix)
    }
}

impl Drop for Mi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A booted kernel that keeps allocating, `watch --serve` on it, and gdb/MI attached through
/// the watch's server.
fn mi_through_watch() -> (Qemu, Watch, Mi) {
    let mut q = Qemu::boot();
    let w = Watch::start(&q);
    keep_allocating(&mut q);
    let mut mi = Mi::start();
    mi.expect("(gdb)");
    mi.command(&format!("-target-select remote {}", w.serve), "^connected");
    (q, w, mi)
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_mi_through_the_inspector_as_an_ide_drives_it() {
    let mut q = Qemu::boot();
    let w = Watch::start(&q);
    keep_allocating(&mut q);
    let mut mi = Mi::start();
    mi.expect("(gdb)");
    // As IDEs do: commands are taken while the target runs (for -exec-interrupt).
    mi.command("-gdb-set mi-async on", "^done");
    mi.command(&format!("-target-select remote {}", w.serve), "^connected");
    mi.command("-break-insert track_alloc", "^done,bkpt=");
    mi.command("-exec-continue", "^running");
    let stopped = mi.expect("*stopped");
    assert!(stopped.contains("breakpoint-hit"), "{stopped}");
    assert!(stopped.contains("track_alloc"), "{stopped}");
    let args = mi.command("-stack-list-arguments 1 0 0", "^done,stack-args=");
    assert!(args.contains("name=\"owner\""), "{args}");
    mi.command("-break-delete 1", "^done");
    mi.command("-exec-continue", "^running");
    // Running with no breakpoint: the inspector's samples must not show up as stops.
    std::thread::sleep(Duration::from_millis(700));
    mi.command("-exec-interrupt", "^done");
    let stopped = mi.expect("*stopped");
    assert!(
        stopped.contains("signal-received") || stopped.contains("SIGINT"),
        "{stopped}"
    );
    let stray: Vec<_> = mi
        .seen
        .iter()
        .filter(|l| l.starts_with("*stopped"))
        .collect();
    // The connect's stop, the breakpoint's and the interrupt's: nothing else.
    assert_eq!(stray.len(), 3, "only the stops gdb caused: {stray:?}");
    mi.command("-target-detach", "^done");
    mi.command("-gdb-exit", "^exit");
    let seen = w.events();
    w.wait_events_beyond(seen);
    w.stop();
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_killed_at_its_breakpoint_leaves_the_guest_running_without_it() {
    let (mut q, w, mut mi) = mi_through_watch();
    // gdb takes its breakpoints out at every stop unless told to keep them in.
    mi.command("-gdb-set breakpoint always-inserted on", "^done");
    mi.command("-break-insert track_alloc", "^done,bkpt=");
    mi.command("-exec-continue", "^running");
    mi.expect("*stopped");
    // SIGKILL: no detach, the socket just closes.
    Command::new("kill")
        .args(["-KILL", &mi.child.id().to_string()])
        .status()
        .unwrap();
    let _ = mi.child.wait();
    // The guest runs on: the console answers and allocates (track_alloc runs), watch sees
    // events, and a fresh session attaches (the dead one's slot is free). That the dead
    // client's breakpoint left QEMU itself is proved by the next test.
    q.send_line("leak 2");
    q.expect("allocated 2 pages", T);
    let seen = w.events();
    w.wait_events_beyond(seen);
    let out = gdb_batch(&w.serve, &["info breakpoints", "detach"]);
    assert!(out.contains("No breakpoints"), "{out}");
    w.stop();
}

/// The proof in QEMU that a gdb killed at its breakpoint leaves none behind: after the kill,
/// the kernel's own count of tracked allocations (`total_allocs`, one per `track_alloc` call)
/// grows by 200 while the stub reports not one breakpoint stop. Had the breakpoint stayed in
/// QEMU, every one of those calls would have stopped the guest (a `T05` the server counts).
#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn gdb_killed_at_its_breakpoint_leaves_no_breakpoint_in_qemu() {
    use inspector::debugger::live::DebugSource;
    use inspector::serve::Serve;
    use inspector::source::Source;

    let mut q = Qemu::boot();
    let stub = format!("127.0.0.1:{}", q.gdb_port());
    let serve = Serve::start("127.0.0.1:0", &stub).unwrap();
    let mut views = DebugSource::new(kernel_elf(), stub.clone())
        .unwrap()
        .with_connector(serve.connector());
    views.sample().unwrap();
    keep_allocating(&mut q);
    let mut mi = Mi::start();
    mi.expect("(gdb)");
    mi.command(
        &format!("-target-select remote {}", serve.addr()),
        "^connected",
    );
    // gdb takes its breakpoints out at every stop unless told to keep them in: in, it dies
    // with its breakpoint in the guest.
    mi.command("-gdb-set breakpoint always-inserted on", "^done");
    mi.command("-break-insert track_alloc", "^done,bkpt=");
    mi.command("-exec-continue", "^running");
    let stop = mi.expect("*stopped");
    assert!(stop.contains("track_alloc"), "{stop}");
    assert!(serve.guest_traps() >= 1, "gdb's stop was a breakpoint trap");
    Command::new("kill")
        .args(["-KILL", &mi.child.id().to_string()])
        .status()
        .unwrap();
    let _ = mi.child.wait();
    let start = Instant::now();
    while serve.log().attached.is_some() {
        assert!(start.elapsed() < T, "the dead client's session never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    let traps = serve.guest_traps();
    let allocs = views.sample().unwrap().header.total_allocs;
    let mut now = allocs;
    let start = Instant::now();
    while now < allocs + 200 {
        assert!(
            start.elapsed() < T,
            "track_alloc ran {} times since the kill, not 200: is the guest stuck at the old \
             breakpoint?",
            now - allocs
        );
        std::thread::sleep(Duration::from_millis(100));
        now = views.sample().unwrap().header.total_allocs;
    }
    assert_eq!(
        serve.guest_traps(),
        traps,
        "the guest stopped at a breakpoint while track_alloc ran {} times after the kill",
        now - allocs
    );
    views.detach();
    drop(serve);
    q.send_line("mem");
    q.expect("pages total=", T);
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn a_second_gdb_is_refused_in_gdbs_terms() {
    let (_q, w, mut mi) = mi_through_watch();
    let out = Command::new("gdb-multiarch")
        .args(["-batch", "-nx"])
        .arg(kernel_elf())
        .args(["-ex", &format!("target remote {}", w.serve)])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("another gdb is attached"), "{text}");
    mi.command("-target-detach", "^done");
    w.stop();
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn a_tui_breakpoint_and_a_gdb_breakpoint_each_stop_only_their_own_debugger() {
    use inspector::debugger::live::{DebugCommand, DebugSource, DebugState, Debuggable};
    use inspector::serve::Serve;
    use inspector::source::Source;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut q = Qemu::boot();
    let stub = format!("127.0.0.1:{}", q.gdb_port());
    let serve = Serve::start("127.0.0.1:0", &stub).unwrap();
    // The TUI's side, as its sampling thread drives it: a breakpoint at free_proc (every exit),
    // continued at each of its stops.
    let mut tui = DebugSource::new(kernel_elf(), stub.clone())
        .unwrap()
        .with_connector(serve.connector());
    tui.sample().unwrap();
    tui.command(DebugCommand::ToggleBreakpoint("free_proc".into()))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut tui_stops = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
            let _ = tui.sample();
            if let Some(r) = tui.take_stop_report() {
                if let DebugState::Stopped(view) = &r.state {
                    // The function the stop is in (not a call inlined at its address).
                    let f = view.backtrace.iter().find(|f| !f.inlined);
                    tui_stops.push(f.and_then(|f| f.function.clone()));
                }
                tui.command(DebugCommand::Continue).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tui.detach();
        tui_stops
    });
    keep_allocating(&mut q);
    let out = gdb_batch(
        serve.addr(),
        &[
            "break track_alloc",
            "continue",
            "continue",
            "continue",
            "delete",
            "detach",
        ],
    );
    assert_eq!(out.matches("Breakpoint 1, ").count(), 3, "{out}");
    assert!(
        !out.contains("free_proc ("),
        "gdb stopped at the TUI's breakpoint:\n{out}"
    );
    assert_no_foreign_stop(&out);
    // Exits go on: the TUI's breakpoint is hit.
    q.send_line("leak 1");
    q.expect("allocated 1 pages", T);
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::SeqCst);
    let tui_stops = sampler.join().unwrap();
    assert!(
        !tui_stops.is_empty(),
        "the TUI's breakpoint never stopped it"
    );
    for f in &tui_stops {
        let f = f.as_deref().unwrap_or("?");
        assert!(
            f.contains("free_proc"),
            "the TUI stopped in {f}: {tui_stops:?}"
        );
    }
    drop(serve);
    q.send_line("mem");
    q.expect("pages total=", T);
}

/// The part of the TUI's header after `held by gdb at `, if it says so.
fn held_by_gdb(screen: &str) -> Option<&str> {
    let line = screen.lines().find(|l| l.contains("held by gdb at "))?;
    let at = line.split("held by gdb at ").nth(1)?;
    Some(at.split(" │").next().unwrap_or(at).trim())
}

/// `tui --serve` in tmux, a real gdb through it stopped at its breakpoint: the header says
/// `held by gdb at FUNCTION FILE:LINE`, the views go on showing the tracker (read in place),
/// and once gdb detaches the header says the guest runs again.
#[test]
#[ignore = "boots QEMU, runs gdb-multiarch and tmux: run with make test"]
fn the_tui_says_where_gdb_holds_the_guest_and_its_views_go_on() {
    let mut q = Qemu::boot();
    let serve = format!("127.0.0.1:{}", free_port());
    let tui = Tui::start_with(
        "serve-held",
        &format!(
            "--interval 100ms --gdb 127.0.0.1:{} --serve {serve}",
            q.gdb_port()
        ),
    );
    tui.wait_for("connected, serving gdb", T, |s| {
        s.contains("● connected") && s.contains(&format!("serving gdb on {serve}"))
    });
    keep_allocating(&mut q);
    tui.wait_for("churn in the overview", T, |s| s.contains("churn"));

    // gdb stops at track_alloc and stays there until the file `release` exists.
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    let gdb = Command::new("gdb-multiarch")
        .current_dir(root())
        .args(["-batch", "-nx", "-iex", "set auto-load local-gdbinit off"])
        .args(["-x", ".gdbinit"])
        .arg(kernel_elf())
        .args(["-ex", &format!("target remote {serve}")])
        .args(["-ex", "break track_alloc", "-ex", "continue"])
        .args([
            "-ex",
            &format!(
                "shell while [ ! -e {} ]; do sleep 0.05; done",
                release.display()
            ),
        ])
        .args(["-ex", "delete", "-ex", "detach"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gdb-multiarch (make setup)");
    // Whatever happens, let gdb go; after a failed assertion (gdb may be stuck short of its
    // wait), kill it by its pid: no test leaves a gdb behind.
    struct Release<'a>(&'a Path, u32);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            let _ = std::fs::write(self.0, b"");
            if std::thread::panicking() {
                std::thread::sleep(Duration::from_millis(500));
                // SAFETY: kill(2) on the pid of our own child, not reaped yet (only the success
                // path waits for it, after this guard is gone).
                unsafe { libc::kill(self.1 as i32, libc::SIGKILL) };
            }
        }
    }
    let release_guard = Release(&release, gdb.id());

    // (gdb holds the guest from the moment it attaches, wherever it was: then at its stop.)
    tui.wait_for("held by gdb at track_alloc FILE:LINE", T, |s| {
        held_by_gdb(s).is_some_and(|at| at.contains("track_alloc"))
    });
    let screen = tui.screen();
    let at = held_by_gdb(&screen).unwrap().to_string();
    let mut words = at.split_whitespace();
    let (function, place) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    assert!(function.ends_with("track_alloc"), "{at}\n{screen}");
    let (file, line) = place.rsplit_once(':').unwrap_or(("", ""));
    assert!(
        file.ends_with(".rs") && line.parse::<u32>().is_ok_and(|n| n > 0),
        "not FILE:LINE: {at}\n{screen}"
    );
    // The views go on: the overview lists the allocating process and the table's totals;
    // the events view, the allocations that led here.
    assert!(
        screen.contains("churn") && screen.contains("tracked "),
        "{screen}"
    );
    tui.key("4");
    tui.wait_for("the events view, held by gdb", T, |s| {
        held_by_gdb(s).is_some() && s.contains(" Events ") && s.contains("alloc ")
    });
    tui.key("1");

    drop(release_guard);
    let out = gdb.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gdb failed:\n{text}");
    assert!(text.contains("Breakpoint 1, "), "{text}");
    tui.wait_for("the guest running again, gdb gone", T, |s| {
        held_by_gdb(s).is_none() && s.contains("guest running")
    });
    tui.key("q");
    assert_eq!(tui.wait_exit(T), "0");
    q.send_line("mem");
    q.expect("pages total=", T);
}

/// A gdbstub port whose next port is free too (`make run` serves gdb there).
fn port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn make_dump_while_watch_holds_the_stub_goes_through_its_gdb_server() {
    let port = port_pair();
    let mut q = Qemu::boot_on_port(port);
    q.send_line("leak 6 120 &");
    let started = q.expect("allocated 6 pages", T);
    let pid = common::qemu::console_field(started.rsplit("leak: ").next().unwrap(), "pid");
    // As under `make run`: the inspector holds the stub and serves gdb on GDB_PORT+1.
    let w = Watch::start_serving(&q, &format!("127.0.0.1:{}", port + 1));
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("guest.core");
    common::cli::make_dump(port, &core);
    let read = Command::new(BIN)
        .args(["snapshot", "--json", "--core"])
        .arg(&core)
        .arg("--elf")
        .arg(kernel_elf())
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let snap: Value = serde_json::from_slice(&read.stdout).unwrap();
    let leak = snap["pids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid))
        .unwrap_or_else(|| panic!("the leak's pid {pid} in the dump: {snap}"));
    assert!(leak["pages"].as_u64().unwrap() >= 6, "{leak}");
    // The guest runs on, and watch kept its connection to the stub throughout.
    assert!(q.run("echo after", T).contains("after"));
    let seen = w.events();
    q.send_line("leak 2 1 &");
    w.wait_events_beyond(seen);
    w.stop();
}

/// The integer registers and pc (1 to 32) of gdb thread `thread` (hart `thread - 1`), as
/// gdb/MI lists them: equal for a hart that did not run; a hart that ran for long (timer
/// interrupts, other processes) is all but certain to show others.
fn mi_registers(mi: &mut Mi, thread: u32) -> String {
    let numbers: Vec<String> = (1..=32).map(|n| n.to_string()).collect();
    let line = mi.command(
        &format!(
            "-data-list-register-values --thread {thread} x {}",
            numbers.join(" ")
        ),
        "^done,register-values=",
    );
    assert!(line.contains("number=\"32\""), "{line}");
    line
}

#[test]
#[ignore = "boots QEMU and runs gdb-multiarch: run with make test"]
fn with_scheduler_locking_a_continue_runs_the_current_hart_alone() {
    use inspector::serve::Serve;
    if common::qemu::smp() < 2 {
        return; // one hart: nothing to keep stopped
    }
    let mut q = Qemu::boot();
    // Both harts busy, so a hart that runs for half a second is somewhere else after it.
    keep_allocating(&mut q);
    keep_allocating(&mut q);
    let stub = format!("127.0.0.1:{}", q.gdb_port());
    let serve = Serve::start("127.0.0.1:0", &stub).unwrap();
    let mut mi = Mi::start();
    mi.expect("(gdb)");
    mi.command("-gdb-set mi-async on", "^done");
    mi.command(
        &format!("-target-select remote {}", serve.addr()),
        "^connected",
    );
    let run_a_while = |mi: &mut Mi| {
        mi.command("-exec-continue", "^running");
        std::thread::sleep(Duration::from_millis(500));
        mi.command("-exec-interrupt", "^done");
        mi.expect("*stopped");
    };
    // Locked: thread 2 (hart 1) continues alone; hart 0 stays where it was.
    mi.command("-gdb-set scheduler-locking on", "^done");
    let held = mi_registers(&mut mi, 1);
    let ran_from = mi_registers(&mut mi, 2);
    mi.command("-thread-select 2", "^done");
    run_a_while(&mut mi);
    // gdb keeps the registers of a thread it did not resume: ask the server again.
    mi.command(
        "-interpreter-exec console \"maintenance flush register-cache\"",
        "^done",
    );
    assert_eq!(mi_registers(&mut mi, 1), held, "hart 0 stayed stopped");
    assert_ne!(mi_registers(&mut mi, 2), ran_from, "hart 1 ran");
    // Unlocked: every hart runs again.
    mi.command("-gdb-set scheduler-locking off", "^done");
    run_a_while(&mut mi);
    assert_ne!(
        mi_registers(&mut mi, 1),
        held,
        "hart 0 ran once the lock was off"
    );
    mi.command("-target-detach", "^done");
    mi.command("-gdb-exit", "^exit");
    // The guest runs on: the churns' programs go on printing.
    let before = q.output().len();
    let start = Instant::now();
    while q.output().len() == before {
        assert!(
            start.elapsed() < T,
            "the console fell silent after the session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
