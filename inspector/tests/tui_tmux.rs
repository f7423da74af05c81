//! `make run` end to end, as a user sees it: `scripts/run.sh` starts QEMU's console and the
//! TUI side by side in tmux; we type in the console pane with `send-keys` and read both panes
//! with `capture-pane`. Checks: a background `leak 20 10 &` shows up in the TUI (overview row,
//! allocations filtered by its PID) soon after it allocates, its exit reclaim shows in the leaks
//! view, `q` closes the TUI and leaves the kernel answering, and ending the session stops QEMU
//! and removes its RAM file. With the C example kernel (`make run KERNEL=build/chapter-c.elf`):
//! its demo processes show in the TUI, read through the stub (it has no generation counter for
//! the RAM file), and their exit reclaims in the leaks view.
//!
//! Each test runs its own tmux server (private `TMUX_TMPDIR`, `TMUX` unset) and QEMU on a free
//! port; a guard kills the session, the server and QEMU (by its pid: the child of the console
//! pane's scripts/qemu.sh) even when an assertion fails.

mod common;

use common::qemu::{c_kernel_elf, kernel_elf};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const INSPECTOR: &str = env!("CARGO_BIN_EXE_inspector");
const POLL: Duration = Duration::from_millis(100);

fn run_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/run.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Alive and not a zombie (a killed QEMU stays a zombie until tmux or init reaps it).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The QEMU process whose parent is `parent` (the console pane runs scripts/qemu.sh, which runs
/// QEMU as its child), if there is one.
fn qemu_child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": the parent follows the state, after the last ')'.
        let ppid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent && comm(pid).starts_with("qemu-system")).then_some(pid)
    })
}

/// Where run.sh's QEMU keeps guest RAM for a session on `port` (its default RAM_FILE).
fn ram_file(port: u16) -> PathBuf {
    PathBuf::from(format!("/dev/shm/leakscope-{port}.ram"))
}

/// A `scripts/run.sh` session on a private tmux server; cleans everything up on drop.
struct Session {
    tmux_dir: tempfile::TempDir,
    name: String,
    console: String,
    tui: String,
    qemu_pid: u32,
    port: u16,
}

impl Session {
    /// Runs scripts/run.sh detached with the test's ELF and inspector on a free port, then
    /// finds the two panes (console first, TUI second).
    fn start(tag: &str) -> Session {
        Session::start_elf(tag, &kernel_elf())
    }

    /// Like [`start`](Self::start) with the kernel `elf`.
    fn start_elf(tag: &str, elf: &Path) -> Session {
        assert!(
            elf.exists(),
            "no kernel at {}: run `make kernel` (or `make c-kernel`) first",
            elf.display()
        );
        let tmux_dir = tempfile::Builder::new()
            .prefix("leakscope-tmux")
            .tempdir()
            .unwrap();
        let name = format!("leakscope-test-{tag}-{}", std::process::id());
        let port = free_port();
        // Its own port for the gdb server too: GDB_PORT+1 may be another test's.
        let serve_port = free_port();
        let out = Command::new("bash")
            .arg(run_sh())
            .env("SERVE_PORT", serve_port.to_string())
            .env("TMUX_TMPDIR", tmux_dir.path())
            .env_remove("TMUX")
            .env("LEAKSCOPE_DETACHED", "1")
            .env("LEAKSCOPE_SESSION", &name)
            .env("LEAKSCOPE_KERNEL_ELF", elf)
            .env("LEAKSCOPE_INSPECTOR", INSPECTOR)
            .env("GDB_PORT", port.to_string())
            .env("COLUMNS", "200")
            .env("LINES", "50")
            .stdin(Stdio::null())
            .output()
            .expect("run bash scripts/run.sh");
        // From here on a guard exists, so a failure below still cleans up.
        let mut s = Session {
            tmux_dir,
            name,
            console: String::new(),
            tui: String::new(),
            qemu_pid: 0,
            port,
        };
        assert!(
            out.status.success(),
            "run.sh failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let panes = s.tmux_ok(&[
            "list-panes",
            "-t",
            &format!("={}:", s.name),
            "-F",
            "#{pane_id} #{pane_pid}",
        ]);
        let panes: Vec<(String, u32)> = panes
            .lines()
            .map(|l| {
                let (id, pid) = l.split_once(' ').unwrap();
                (id.to_string(), pid.parse().unwrap())
            })
            .collect();
        assert_eq!(panes.len(), 2, "expected console and TUI panes: {panes:?}");
        s.console = panes[0].0.clone();
        s.tui = panes[1].0.clone();
        // The pane's process is scripts/qemu.sh, QEMU its child: killing QEMU by that pid is
        // exact, and the script then removes the RAM file.
        let wrapper = panes[0].1;
        s.qemu_pid = qemu_child_of(wrapper).unwrap_or_else(|| {
            panic!(
                "console pane's process {wrapper} ({}) has no QEMU child",
                comm(wrapper)
            )
        });
        s
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(args)
            .env("TMUX_TMPDIR", self.tmux_dir.path())
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane's screen plus some history, trailing blanks trimmed by tmux.
    fn capture(&self, pane: &str) -> String {
        self.tmux_ok(&["capture-pane", "-p", "-S", "-100", "-t", pane])
    }

    /// Types `text` literally, then Enter if `enter`.
    fn type_text(&self, pane: &str, text: &str, enter: bool) {
        self.tmux_ok(&["send-keys", "-t", pane, "-l", text]);
        if enter {
            self.tmux_ok(&["send-keys", "-t", pane, "Enter"]);
        }
    }

    fn key(&self, pane: &str, key: &str) {
        self.tmux_ok(&["send-keys", "-t", pane, key]);
    }

    /// Polls `pane` until `found` returns Some; panics after `timeout` showing the pane.
    fn wait_for<T>(
        &self,
        pane: &str,
        what: &str,
        timeout: Duration,
        found: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.capture(pane);
            if let Some(t) = found(&screen) {
                return t;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; pane {pane} shows:\n{screen}"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn pane_ids(&self) -> Vec<String> {
        self.tmux_ok(&[
            "list-panes",
            "-t",
            &format!("={}:", self.name),
            "-F",
            "#{pane_id}",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-session", "-t", &format!("={}", self.name)]);
        let _ = self.tmux(&["kill-server"]);
        // Normally the session's end took QEMU with it; if not, kill it by its pid (checked to
        // still be a QEMU, so a reused pid is left alone).
        if self.qemu_pid != 0 && alive(self.qemu_pid) && comm(self.qemu_pid).starts_with("qemu") {
            let _ = Command::new("kill")
                .args(["-KILL", &self.qemu_pid.to_string()])
                .status();
        }
    }
}

/// `leak: pid=P allocated N pages in K allocations` → (P, K), for N = 20.
fn leak_line(console: &str) -> Option<(u32, u32)> {
    console.lines().find_map(|l| {
        let rest = l.split("leak: pid=").nth(1)?;
        let (pid, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("allocated 20 pages in ")?;
        let (k, _) = rest.split_once(' ')?;
        Some((pid.parse().ok()?, k.parse().ok()?))
    })
}

/// The words of a table row, box-drawing borders removed.
fn cells(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .collect()
}

/// The overview row of `pid` named leak: its PAGES column, if the row also lists
/// `alloc_pages 20` among its top tags.
fn overview_pages(screen: &str, pid: u32) -> Option<u64> {
    screen.lines().find_map(|l| {
        let c = cells(l);
        // PID NAME STATE ALLOCS PAGES ...
        if c.len() > 4 && c[0] == pid.to_string() && c[1] == "leak" && l.contains("alloc_pages 20")
        {
            c[4].parse().ok()
        } else {
            None
        }
    })
}

/// Allocations view rows (SLOT PA PAGES KiB PID NAME TAG ALLOCATED) of `pid` tagged
/// alloc_pages: (count, pages), once the title shows the `pid:P` filter.
fn filtered_alloc_pages(screen: &str, pid: u32) -> Option<(u32, u64)> {
    if !screen.contains(&format!("filter pid:{pid}")) {
        return None;
    }
    let mut n = 0;
    let mut pages = 0;
    for l in screen.lines() {
        let c = cells(l);
        if c.len() >= 7
            && c[1].starts_with("0x")
            && c[4] == pid.to_string()
            && c[6] == "alloc_pages"
        {
            n += 1;
            pages += c[2].parse::<u64>().ok()?;
        }
    }
    (n > 0).then_some((n, pages))
}

#[test]
#[ignore = "boots QEMU in tmux: run with make test"]
fn make_run_shows_a_leak_live_and_its_reclaim_then_q_leaves_the_kernel_running() {
    let s = Session::start("leak");
    let t = Duration::from_secs(30);

    s.wait_for(&s.console, "the shell prompt", t, |c| {
        c.lines().any(|l| l.trim_end() == "$").then_some(())
    });
    s.wait_for(&s.tui, "the TUI connected", Duration::from_secs(15), |c| {
        (c.contains("● connected") && c.contains("shell")).then_some(())
    });

    s.type_text(&s.console, "leak 20 10 &", true);
    let (pid, nallocs) = s.wait_for(
        &s.console,
        "leak's pid line",
        Duration::from_secs(10),
        leak_line,
    );
    let printed = Instant::now();

    // The TUI samples every 250 ms: the new PID shows up with its 20 leaked pages (plus its
    // stack, page tables and kernel stack) well within a few seconds of the print.
    let pages = s.wait_for(
        &s.tui,
        &format!("overview row of pid {pid} with alloc_pages 20"),
        Duration::from_secs(3),
        |c| overview_pages(c, pid),
    );
    eprintln!(
        "pid {pid} in the TUI {:?} after the console line",
        printed.elapsed()
    );
    assert!(
        pages >= 20,
        "pid {pid} shows {pages} pages, want at least 20"
    );

    // Allocations view, filtered to the PID: exactly the K alloc_pages entries, 20 pages.
    s.key(&s.tui, "2");
    s.key(&s.tui, "/");
    s.type_text(&s.tui, &format!("pid:{pid}"), true);
    let (n, p) = s.wait_for(
        &s.tui,
        "allocations filtered by pid",
        Duration::from_secs(5),
        |c| filtered_alloc_pages(c, pid).filter(|&(n, _)| n == nallocs),
    );
    assert_eq!((n, p), (nallocs, 20), "alloc_pages entries of pid {pid}");

    // Leaks view: the exit sweep ~10 s later reports the 20 pages force-freed.
    s.key(&s.tui, "4");
    let want = format!("pid {pid} (leak) leak: 20 pages in {nallocs} allocations");
    s.wait_for(&s.tui, &want, Duration::from_secs(25), |c| {
        c.contains(&want).then_some(())
    });

    // q: the TUI exits cleanly (run.sh keeps the pane open, showing the error, when the
    // inspector fails) and the console pane is all that is left, with the kernel answering.
    s.key(&s.tui, "q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.pane_ids().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "TUI pane still there 10 s after q; it shows:\n{}",
            s.capture(&s.tui)
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(s.pane_ids(), vec![s.console.clone()]);
    s.type_text(&s.console, "hello", true);
    s.wait_for(&s.console, "hello's answer", Duration::from_secs(10), |c| {
        c.contains("Hello from pid").then_some(())
    });
    assert!(alive(s.qemu_pid), "QEMU died after the TUI quit");
    let ram = ram_file(s.port);
    assert!(
        ram.exists(),
        "{} missing while QEMU runs (is /dev/shm writable?)",
        ram.display()
    );

    // Ending the session stops QEMU and removes its RAM file.
    s.tmux_ok(&["kill-session", "-t", &format!("={}", s.name)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(s.qemu_pid) || ram.exists() {
        assert!(
            Instant::now() < deadline,
            "10 s after kill-session: QEMU (pid {}) alive: {}; {} exists: {}",
            s.qemu_pid,
            alive(s.qemu_pid),
            ram.display(),
            ram.exists()
        );
        std::thread::sleep(POLL);
    }
}

#[test]
#[ignore = "boots QEMU in tmux: run with make test"]
fn quitting_qemu_ends_the_session() {
    let s = Session::start("quit");
    s.wait_for(
        &s.console,
        "the shell prompt",
        Duration::from_secs(30),
        |c| c.lines().any(|l| l.trim_end() == "$").then_some(()),
    );
    let ram = ram_file(s.port);
    assert!(ram.exists(), "{} missing while QEMU runs", ram.display());
    // QEMU's console escape: Ctrl-A x. The session ends, TUI included, and the RAM file goes.
    s.key(&s.console, "C-a");
    s.key(&s.console, "x");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .tmux(&["has-session", "-t", &format!("={}", s.name)])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "session still there 10 s after QEMU quit"
        );
        std::thread::sleep(POLL);
    }
    assert!(!alive(s.qemu_pid), "QEMU still running");
    assert!(!ram.exists(), "{} left behind", ram.display());
}

/// Runs scripts/run.sh with `GDB_PORT=gdb_port` on a private tmux server that is killed after;
/// nothing may start (the ports are checked first). Returns its exit status and stderr.
fn run_sh_on(gdb_port: u16) -> (bool, String) {
    let tmux_dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(run_sh())
        .env("TMUX_TMPDIR", tmux_dir.path())
        .env_remove("TMUX")
        .env("LEAKSCOPE_DETACHED", "1")
        .env(
            "LEAKSCOPE_SESSION",
            format!("leakscope-busy-{}", std::process::id()),
        )
        .env("LEAKSCOPE_KERNEL_ELF", INSPECTOR) // only checked to exist: nothing starts
        .env("LEAKSCOPE_INSPECTOR", INSPECTOR)
        .env("GDB_PORT", gdb_port.to_string())
        .env_remove("SERVE_PORT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("tmux")
        .arg("kill-server")
        .env("TMUX_TMPDIR", tmux_dir.path())
        .env_remove("TMUX")
        .output();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// True if `listener` was never connected to (a connection to a QEMU gdbstub halts its guest).
fn untouched(listener: &TcpListener) -> bool {
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
#[ignore = "needs tmux: run with make test"]
fn run_sh_refuses_a_busy_port_without_touching_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ok, err) = run_sh_on(port);
    assert!(!ok, "run.sh started on a busy port");
    assert!(
        err.contains(&format!("port {port} is in use")),
        "stderr: {err}"
    );
    assert!(untouched(&listener), "run.sh connected to the busy port");
}

/// `make run`'s TUI serves gdb on GDB_PORT+1: taken, run.sh says so and what to run instead,
/// before starting anything.
#[test]
#[ignore = "needs tmux: run with make test"]
fn run_sh_refuses_a_busy_serve_port_and_names_the_way_out() {
    // A listening port whose predecessor is free: GDB_PORT free, GDB_PORT+1 taken.
    let (listener, port) = (0..50)
        .find_map(|_| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            let free = TcpListener::bind(("127.0.0.1", port - 1)).is_ok();
            free.then_some((l, port))
        })
        .expect("a free port below a bound one");
    listener.set_nonblocking(true).unwrap();
    let (ok, err) = run_sh_on(port - 1);
    assert!(!ok, "run.sh started with its serve port taken");
    assert!(
        err.contains(&format!(
            "port {port} (for your gdb, through the TUI) is in use"
        )) && err.contains("SERVE_PORT="),
        "stderr: {err}"
    );
    assert!(untouched(&listener), "run.sh connected to the busy port");
}

#[test]
#[ignore = "needs QEMU, tmux and build/chapter-c.elf (make c-kernel); make test runs it"]
fn the_c_kernel_shows_in_the_tui_through_the_stub() {
    let s = Session::start_elf("c", &c_kernel_elf());
    s.wait_for(&s.console, "an exit report", Duration::from_secs(30), |c| {
        c.contains("[free_all_tracked] Force freeing leftover allocations for pid=")
            .then_some(())
    });
    // The RAM file is there, but a kernel without a generation counter is read through the
    // stub: the header says so with the stub's interval and a pause.
    let screen = s.wait_for(&s.tui, "demo processes", Duration::from_secs(30), |t| {
        (t.contains("every 250ms") && t.lines().any(|l| cells(l).get(1) == Some(&"demo")))
            .then(|| t.to_string())
    });
    assert!(screen.contains("pause"), "{screen}");
    s.key(&s.tui, "4");
    s.wait_for(
        &s.tui,
        "an exit's leak report",
        Duration::from_secs(30),
        |t| (t.contains("(demo) leak:") && t.contains("RECLAIM")).then_some(()),
    );
    s.key(&s.tui, "q");
    s.wait_for(
        &s.console,
        "the kernel running on",
        Duration::from_secs(10),
        |_| (s.pane_ids().len() == 1).then_some(()),
    );
}
