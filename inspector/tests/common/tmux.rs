//! The TUI in a tmux pane for end-to-end tests: started on a private tmux server (its own
//! `TMUX_TMPDIR`, `TMUX` unset) that is killed on drop; the screen read with `capture-pane`,
//! keys sent with `send-keys`, waits bounded.

use super::cli::BIN;
use super::qemu::kernel_elf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest the TUI may take to start.
const T: Duration = Duration::from_secs(20);
/// How often a wait looks at the screen.
const POLL: Duration = Duration::from_millis(100);

/// The TUI in a detached tmux session on a private server, run by a shell that records its
/// exit status in a file (tmux's own `pane_dead_status` is not always set); killed on drop.
pub struct Tui {
    dir: tempfile::TempDir,
    /// The tmux session (and its one pane).
    pub name: String,
    /// The inspector's pid (the pane's shell's child).
    pub pid: u32,
}

impl Tui {
    pub fn start(tag: &str, gdb_port: u16) -> Tui {
        Tui::start_with(tag, &format!("--interval 100ms --gdb 127.0.0.1:{gdb_port}"))
    }

    /// The TUI with `conn` (its source and interval options) after `--elf`.
    pub fn start_with(tag: &str, conn: &str) -> Tui {
        let dir = tempfile::Builder::new()
            .prefix("leakscope-tmux")
            .tempdir()
            .unwrap();
        let name = format!("leakscope-{tag}-{}", std::process::id());
        let cmd = format!(
            "{} tui --elf {} {conn}; echo $? > {}",
            BIN,
            kernel_elf().display(),
            dir.path().join("status").display()
        );
        let mut t = Tui { dir, name, pid: 0 };
        let name = t.name.clone();
        // remain-on-exit: the pane stays after the TUI exits, so its status can be read.
        t.ok(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "200",
            "-y",
            "50",
            &cmd,
            ";",
            "set-option",
            "-t",
            &name,
            "remain-on-exit",
            "on",
        ]);
        let shell: u32 = t.format("#{pane_pid}").parse().unwrap();
        let deadline = Instant::now() + T;
        t.pid = loop {
            let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                break pid.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the pane's shell started no TUI");
            std::thread::sleep(Duration::from_millis(20));
        };
        t
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(args)
            .env("TMUX_TMPDIR", self.dir.path())
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// A tmux format evaluated for the TUI's pane.
    pub fn format(&self, f: &str) -> String {
        self.ok(&["display-message", "-p", "-t", &self.name, f])
    }

    pub fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", &self.name])
    }

    pub fn key(&self, k: &str) {
        self.ok(&["send-keys", "-t", &self.name, k]);
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if ok(&s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; the TUI shows:\n{s}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the TUI to exit; returns its exit status as the shell saw it (128 + N: killed
    /// by signal N).
    pub fn wait_exit(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let file = self.dir.path().join("status");
        loop {
            if let Ok(s) = std::fs::read_to_string(&file) {
                if s.ends_with('\n') {
                    return s.trim().to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the TUI still runs {timeout:?} after the signal; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
