//! Boots the Leakscope kernel in QEMU for end-to-end tests: serial console on piped stdio, a
//! reader thread collecting the output, line input, `expect` with a timeout, and a gdbstub on a
//! free loopback port for inspector tests. QEMU is killed by its pid when the value is dropped.
//! Optionally guest RAM lives in a shared file ([`Qemu::boot_with_ram`]), as `make qemu` keeps
//! it; the harness removes that file once QEMU is dead (QEMU never does).
//!
//! The kernel comes from `LEAKSCOPE_KERNEL_ELF`, else `<workspace>/build/kernel.elf` (`make kernel`);
//! [`Qemu::start_elf`] boots another one, such as the C example ([`c_kernel_elf`]).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running QEMU with the kernel; killed on drop.
pub struct Qemu {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
    /// Byte offset in `output` up to which `expect` has consumed.
    cursor: usize,
    gdb_port: u16,
    /// The file holding guest RAM, if QEMU was started with one; removed once QEMU is dead.
    ram_file: Option<PathBuf>,
}

/// Guest RAM size, as `make qemu` gives it (`-m`, and the size of a RAM file).
pub const RAM_SIZE: &str = "128M";
/// Harts QEMU starts (`-smp`), as `make qemu`'s `SMP ?= 2`: `LEAKSCOPE_SMP` overrides it.
pub const DEFAULT_SMP: u32 = 2;

/// The `-smp` the tests give QEMU: `LEAKSCOPE_SMP` if set, else [`DEFAULT_SMP`].
pub fn smp() -> u32 {
    std::env::var("LEAKSCOPE_SMP")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(DEFAULT_SMP)
}

/// Guest-physical address of the first byte of RAM: offset 0 of a RAM file.
pub const RAM_BASE: u64 = 0x8000_0000;

/// A RAM file path for this test process: in /dev/shm, as `make qemu`'s, named after the pid
/// and `tag` so concurrent tests never share one.
pub fn test_ram_file(tag: &str) -> PathBuf {
    PathBuf::from(format!(
        "/dev/shm/leakscope-test-{}-{tag}.ram",
        std::process::id()
    ))
}

/// The kernel ELF the tests boot.
pub fn kernel_elf() -> PathBuf {
    match std::env::var_os("LEAKSCOPE_KERNEL_ELF") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/kernel.elf"),
    }
}

/// The C example kernel (`make c-kernel`): `<workspace>/build/chapter-c.elf`.
pub fn c_kernel_elf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/chapter-c.elf")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

impl Qemu {
    /// Boots the kernel (running, not halted) and waits for the shell's first prompt.
    pub fn boot() -> Qemu {
        let mut q = Self::start(&[]);
        q.expect("$ ", Duration::from_secs(30));
        q
    }

    /// Starts QEMU with `extra` arguments (e.g. `-S`) and returns at once.
    pub fn start(extra: &[&str]) -> Qemu {
        Self::start_on_port(free_port(), extra)
    }

    /// Like [`boot`](Self::boot) with the gdbstub on `gdb_port` (to restart QEMU where an
    /// inspector expects it).
    pub fn boot_on_port(gdb_port: u16) -> Qemu {
        let mut q = Self::start_on_port(gdb_port, &[]);
        q.expect("$ ", Duration::from_secs(30));
        q
    }

    /// Like [`boot`](Self::boot), with guest RAM in the file `ram_file` (created by QEMU, shared,
    /// the way `make qemu` runs it): the file holds RAM from [`RAM_BASE`] at offset 0 while the
    /// guest runs. A file left at that path by an earlier run is replaced. The harness removes the
    /// file once QEMU is dead ([`kill`](Self::kill), drop).
    pub fn boot_with_ram(ram_file: &Path) -> Qemu {
        let mut q = Self::start_with_ram(ram_file, &[]);
        q.expect("$ ", Duration::from_secs(30));
        q
    }

    /// Like [`start`](Self::start), with guest RAM in the file `ram_file` (see
    /// [`boot_with_ram`](Self::boot_with_ram)).
    pub fn start_with_ram(ram_file: &Path, extra: &[&str]) -> Qemu {
        let _ = std::fs::remove_file(ram_file);
        Self::spawn(free_port(), extra, Some(ram_file))
    }

    /// Like [`start`](Self::start) with the gdbstub on `gdb_port`.
    pub fn start_on_port(gdb_port: u16, extra: &[&str]) -> Qemu {
        Self::spawn(gdb_port, extra, None)
    }

    /// Starts QEMU with the kernel `elf` (running, gdbstub on a free port) and returns at once.
    pub fn start_elf(elf: &Path, extra: &[&str]) -> Qemu {
        Self::spawn_elf(elf, free_port(), extra, None)
    }

    fn spawn(gdb_port: u16, extra: &[&str], ram_file: Option<&Path>) -> Qemu {
        Self::spawn_elf(&kernel_elf(), gdb_port, extra, ram_file)
    }

    fn spawn_elf(elf: &Path, gdb_port: u16, extra: &[&str], ram_file: Option<&Path>) -> Qemu {
        assert!(
            elf.exists(),
            "no kernel at {}: run `make kernel` (or `make c-kernel` for build/chapter-c.elf) first",
            elf.display()
        );
        let mut cmd = Command::new("qemu-system-riscv64");
        // An `-smp` in `extra` comes later and wins (QEMU takes the last one).
        cmd.args(["-machine", "virt", "-m", RAM_SIZE, "-bios", "default"])
            .args(["-smp", &smp().to_string()])
            .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
            .arg("-kernel")
            .arg(elf)
            .args(["-gdb", &format!("tcp:127.0.0.1:{gdb_port}")]);
        if let Some(path) = ram_file {
            // As scripts/qemu.sh does; QEMU merges the two -machine options.
            let path = path.to_str().expect("RAM file path is UTF-8");
            cmd.arg("-object")
                .arg(format!(
                    "memory-backend-file,id=ram,size={RAM_SIZE},mem-path={},share=on",
                    path.replace(',', ",,")
                ))
                .args(["-machine", "memory-backend=ram"]);
        }
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu-system-riscv64 (run `make setup`)");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                sink.lock().unwrap().push_str(&text);
            }
        });
        Qemu {
            child,
            stdin,
            output,
            cursor: 0,
            gdb_port,
            ram_file: ram_file.map(Path::to_path_buf),
        }
    }

    /// The file holding guest RAM, if QEMU was started with one and still runs.
    pub fn ram_file(&self) -> Option<&Path> {
        self.ram_file.as_deref()
    }

    /// The loopback port of QEMU's gdbstub.
    pub fn gdb_port(&self) -> u16 {
        self.gdb_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills QEMU now (as a crash or `kill -9` would) and reaps it; then removes its RAM file,
    /// if any (as scripts/qemu.sh does), once: a later QEMU on the same path keeps its file.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = self.ram_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Types `text` on the console, without Enter.
    pub fn send(&mut self, text: &str) {
        self.stdin
            .write_all(text.as_bytes())
            .expect("write to qemu stdin");
        self.stdin.flush().unwrap();
    }

    /// Types `line` and Enter on the console.
    pub fn send_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to qemu stdin");
        self.stdin.flush().unwrap();
    }

    /// Everything the console printed so far (`\r` removed).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until `needle` appears after what earlier `expect`s consumed; returns the text from
    /// there up to and including `needle`, and consumes it. Panics after `timeout`, showing the
    /// end of the console output.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(i) = out[self.cursor..].find(needle) {
                    let end = self.cursor + i + needle.len();
                    let text = out[self.cursor..end].to_string();
                    self.cursor = end;
                    return text;
                }
            }
            if Instant::now() > deadline {
                let out = self.output();
                let tail: String = out
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!("timed out after {timeout:?} waiting for {needle:?}; console ends with:\n{tail}");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "qemu exited ({status}) while waiting for {needle:?}; console:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a shell command and returns its output (without the echoed command line and the
    /// next prompt). Must be called at a prompt.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> String {
        self.send_line(cmd);
        self.expect(&format!("{cmd}\n"), timeout);
        let text = self.expect("$ ", timeout);
        text.strip_suffix("$ ").unwrap_or(&text).to_string()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The number after `key=` in a console line (`mem`, `churn` and `lockstat` print such
/// fields). Panics naming the line when it has none.
pub fn console_field(line: &str, key: &str) -> u64 {
    let pat = format!("{key}=");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + pat.len();
    line[start..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key}= in {line:?}"))
}
