//! The inspector when things go wrong around it, against the real kernel in QEMU:
//! - the TUI, holding the guest at a breakpoint, gets SIGTERM or SIGHUP (`kill`, a closed tmux
//!   pane): it exits by itself with status 0, the terminal is restored (no alternate screen
//!   left), and the guest runs on without the breakpoint;
//! - QEMU is killed under the TUI and started again on the same port: the TUI says it is
//!   disconnected, reconnects, and shows the new boot (the old boot's process gone, a new one
//!   appearing);
//! - QEMU is killed under `watch`: it says it lost the kernel and exits with status 1; against
//!   the restarted QEMU a new `watch` runs.
//!
//! The TUI runs in a private tmux server (its own `TMUX_TMPDIR`), which a guard kills; QEMU is
//! killed by pid on drop. Run: `make test`, or after `make kernel`:
//! `cargo test -p inspector --test faults_qemu -- --include-ignored`.

mod common;

use common::cli::{snapshot, BIN};
use common::qemu::{free_port, kernel_elf, test_ram_file, Qemu};
use common::tmux::Tui;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// The kernel answers on its console (a new process: allocations through `track_alloc`) and a
/// fresh `snapshot` attaches.
fn assert_guest_runs(q: &mut Qemu, what: &str) {
    q.send_line("mem");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        q.expect("pages total=", T);
        q.expect("$ ", T)
    }));
    assert!(
        r.is_ok(),
        "{what}: the guest no longer answers on its console"
    );
    snapshot(q);
}

/// Arms `track_alloc` in the TUI's debugger view and makes the guest stop there: the TUI
/// holds it. Returns once the header says so.
fn hold_at_track_alloc(tui: &Tui, q: &mut Qemu) {
    tui.wait_for("connected", T, |s| s.contains("● connected"));
    tui.key("5");
    tui.key("b");
    tui.wait_for("the breakpoint", T, |s| s.contains("track_alloc"));
    std::thread::sleep(Duration::from_millis(300));
    q.send_line("leak 3");
    tui.wait_for("the guest held at track_alloc", T, |s| {
        s.contains("guest HELD")
    });
}

#[test]
#[ignore = "boots QEMU, runs tmux: run with make test"]
fn tui_holding_the_guest_quits_cleanly_on_sigterm_and_sighup() {
    let mut q = Qemu::boot();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let tui = Tui::start(&name.to_lowercase(), q.gdb_port());
        hold_at_track_alloc(&tui, &mut q);
        // SAFETY: kill(2) on the TUI's pid, a process this test started.
        assert_eq!(unsafe { libc::kill(tui.pid as libc::pid_t, sig) }, 0);
        let status = tui.wait_exit(Duration::from_secs(10));
        assert_eq!(
            status, "0",
            "{name}: the TUI must end by itself with status 0 (128 + N: killed by signal N)"
        );
        assert_eq!(
            tui.format("#{alternate_on}"),
            "0",
            "{name}: the terminal is left in the alternate screen"
        );
        // The held `leak 3` finishes: the guest was resumed and the breakpoint removed.
        q.expect("leak: pid=", T);
        q.expect("$ ", T);
        assert_guest_runs(&mut q, name);
    }

    // A closed pane: tmux hangs up the TUI's terminal (SIGHUP, and writes fail from then on).
    let tui = Tui::start("killpane", q.gdb_port());
    hold_at_track_alloc(&tui, &mut q);
    let pid = tui.pid;
    tui.ok(&["kill-session", "-t", &tui.name]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "the TUI survived its pane");
        std::thread::sleep(POLL);
    }
    q.expect("leak: pid=", T);
    q.expect("$ ", T);
    assert_guest_runs(&mut q, "closed pane");
}

#[test]
#[ignore = "boots QEMU, runs tmux: run with make test"]
fn tui_reconnects_to_a_restarted_qemu_and_shows_the_new_boot() {
    let port = free_port();
    let mut q = Qemu::boot_on_port(port);
    let tui = Tui::start("restart", port);
    tui.wait_for("connected", T, |s| s.contains("● connected"));
    q.send_line("leak 20 600 &");
    q.expect("leak: pid=", T);
    tui.wait_for("the leak process", T, |s| s.contains(" leak "));

    q.kill();
    tui.wait_for("the lost connection", T, |s| {
        s.contains("disconnected") || s.contains("reconnecting")
    });
    std::thread::sleep(Duration::from_secs(1)); // a few failed reconnects

    let mut q = Qemu::boot_on_port(port);
    tui.wait_for("connected to the new boot, without the old leak", T, |s| {
        s.contains("● connected") && s.contains("shell") && !s.contains(" leak ")
    });
    q.send_line("leak 7 600 &");
    q.expect("leak: pid=", T);
    tui.wait_for("the new boot's leak process", T, |s| s.contains(" leak "));

    tui.key("q");
    assert_eq!(tui.wait_exit(Duration::from_secs(10)), "0");
    assert_guest_runs(&mut q, "after q");
}

/// The TUI reading guest RAM alone (no stub, the default 60 Hz): QEMU ends (its RAM file goes
/// with it) and a new one starts on the same file name; the TUI says it lost the file, reopens
/// the new one and shows the new boot, never the old boot's state.
#[test]
#[ignore = "boots QEMU, runs tmux: run with make test"]
fn tui_from_ram_alone_follows_a_restarted_qemu() {
    let ram = test_ram_file("tui-restart");
    let mut q = Qemu::boot_with_ram(&ram);
    let tui = Tui::start_with("ram-restart", &format!("--ram {}", ram.display()));
    tui.wait_for("views from RAM", T, |s| {
        s.contains("● connected") && s.contains("read from RAM: costs the guest nothing")
    });
    q.send_line("leak 20 600 &");
    q.expect("leak: pid=", T);
    tui.wait_for("the leak process", T, |s| s.contains(" leak "));

    q.kill();
    assert!(!ram.exists(), "the harness removes the RAM file with QEMU");
    tui.wait_for("the lost RAM file", T, |s| {
        s.contains("disconnected") || s.contains("reconnecting")
    });

    let mut q = Qemu::boot_with_ram(&ram);
    tui.wait_for("the new boot, without the old leak", T, |s| {
        s.contains("● connected") && s.contains("shell") && !s.contains(" leak ")
    });
    q.send_line("leak 7 600 &");
    q.expect("leak: pid=", T);
    tui.wait_for("the new boot's leak process", T, |s| s.contains(" leak "));

    tui.key("q");
    assert_eq!(tui.wait_exit(Duration::from_secs(10)), "0");
    assert_guest_runs(&mut q, "after q");
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn watch_says_it_lost_a_killed_qemu_and_exits_1() {
    let port = free_port();
    let mut q = Qemu::boot_on_port(port);
    let gdb = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["watch", "--interval", "50ms", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", &gdb])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    q.send_line("leak 5");
    q.expect("$ ", T);
    std::thread::sleep(Duration::from_millis(500));
    q.kill();
    let start = Instant::now();
    let status = common::cli::wait_bounded(&mut child, T)
        .unwrap_or_else(|| panic!("watch still runs {T:?} after QEMU died"));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("lost the kernel at the GDB stub at {gdb}"))
            && err.contains("watch exits"),
        "{err}"
    );
    eprintln!("watch ended {:?} after QEMU died: {err}", start.elapsed());

    // QEMU back on the same port: a new watch runs against it.
    let mut q = Qemu::boot_on_port(port);
    let out = Command::new(BIN)
        .args(["watch", "--interval", "50ms", "--duration", "1s", "--elf"])
        .arg(kernel_elf())
        .args(["--gdb", &gdb])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_guest_runs(&mut q, "after watch");
}
