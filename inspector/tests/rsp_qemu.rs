//! The RSP client and `RspTarget` against the real QEMU gdbstub, booting OpenSBI only (no
//! kernel): handshake in QEMU's dialect, a breakpoint at the firmware entry, a step, reads of RAM
//! at 0x8000_0000 with and without PhyMemMode, registers via `g` and via the target description
//! and `p`, a monitor command, resume, detach, and a second attach after the detach. Then the
//! Leakscope kernel (`build/kernel.elf`): the tracker header read at a kernel address, through
//! PhyMemMode, at every halt, including halts in user mode.
//!
//! Needs `qemu-system-riscv64`; run with `cargo test -p inspector --test rsp_qemu -- --ignored`
//! (or `make test`). QEMU is killed by its pid when the test ends, and after 60 s in any case.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inspector::rsp::RspConfig;
use inspector::target::{
    BreakpointKind, HaltGuard, MemoryMode, RspTarget, RspTargetOptions, StopReason, Target,
};
use object::{Object, ObjectSymbol};

const RAM: u64 = 0x8000_0000;

/// A QEMU process, killed when dropped.
struct Qemu {
    child: Child,
    addr: String,
}

impl Qemu {
    /// Starts QEMU paused (`-S`) with OpenSBI only and the gdbstub on a free loopback port.
    fn start() -> Qemu {
        Self::start_with(&["-serial", "null", "-S"])
    }

    /// Starts QEMU running the Leakscope kernel; the serial console reads `input`.
    fn start_kernel(elf: &str, input: &'static [u8]) -> Qemu {
        let mut qemu = Self::start_with(&["-kernel", elf, "-serial", "stdio"]);
        let mut stdin = qemu.child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            use std::io::Write;
            // After the shell's prompt is likely up; the UART FIFO holds 16 bytes.
            std::thread::sleep(Duration::from_millis(1500));
            let _ = stdin.write_all(input);
            std::thread::sleep(Duration::from_secs(30));
        });
        qemu
    }

    fn start_with(extra: &[&str]) -> Qemu {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("qemu-system-riscv64")
            .args(["-machine", "virt", "-m", "128M", "-bios", "default"])
            .args(["-display", "none", "-monitor", "none"])
            .args(extra)
            .args(["-gdb", &format!("tcp:{addr}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start qemu-system-riscv64 (apt-get install qemu-system-misc)");
        let pid = child.id();
        // Watchdog: a wedged test must not leave QEMU behind.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        });
        Qemu { child, addr }
    }

    /// Connects, retrying while QEMU starts listening (up to 10 s).
    fn connect(&mut self, resume: bool) -> RspTarget {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let options = RspTargetOptions {
                rsp: RspConfig {
                    connect_timeout: Duration::from_secs(1),
                    reply_timeout: Duration::from_secs(3),
                    max_retransmits: 2,
                    // As the gdb server's connection: replies waited for by spinning first.
                    spin: inspector::rsp::spin::SPIN,
                },
                memory: MemoryMode::PreferPhysical,
                resume_on_connect: resume,
            };
            match RspTarget::connect(&self.addr, options) {
                Ok(t) => return t,
                Err(e) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("QEMU exited ({status}) before accepting a debugger: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("QEMU never accepted a debugger: {e}"),
            }
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn qemu_gdbstub_end_to_end() {
    let mut qemu = Qemu::start();
    let mut target = qemu.connect(false);

    // QEMU's dialect, as measured in the design notes.
    let client = target.client();
    assert!(client.acks_enabled(), "QEMU does not offer QStartNoAckMode");
    assert_eq!(client.packet_size(), 0x1000);
    assert_eq!(client.max_read_chunk(), 0x800);
    assert!(target.physical_memory(), "QEMU supports Qqemu.PhyMemMode");
    assert!(target.is_halted(), "-S: paused at reset");

    // Breakpoint at the firmware entry, hit on the first continue.
    assert_eq!(
        target.set_breakpoint(RAM).unwrap(),
        BreakpointKind::Software
    );
    target.resume().unwrap();
    assert_eq!(
        target.wait_for_stop(Duration::from_secs(5)).unwrap(),
        Some(StopReason::Trap)
    );
    assert_eq!(target.read_registers().unwrap().pc(), RAM);
    assert_eq!(target.step().unwrap(), StopReason::Trap);
    assert_ne!(target.read_registers().unwrap().pc(), RAM);
    target.remove_breakpoint(RAM).unwrap();

    // OpenSBI's first 8 KiB (4 `m` packets), physical then virtual (satp is bare in M-mode).
    let mut phys = vec![0u8; 0x2000];
    target.read_memory(RAM, &mut phys).unwrap();
    assert!(
        phys.iter().any(|&b| b != 0),
        "OpenSBI is loaded at 0x8000_0000"
    );
    assert!(target.set_physical_memory(false).unwrap());
    assert!(!target.physical_memory());
    let mut virt = vec![0u8; 0x2000];
    target.read_memory(RAM, &mut virt).unwrap();
    assert_eq!(phys[..64], virt[..64]);
    assert!(target.set_physical_memory(true).unwrap());

    // Registers: `g`, and `p` through the target description.
    let regs = target.read_registers().unwrap();
    assert_eq!(regs.to_array().len(), 33);
    assert_eq!(regs.x(0), Some(0));
    let client = target.client();
    let pc_regnum = client
        .target_description()
        .unwrap()
        .by_name("pc")
        .unwrap()
        .regnum;
    assert_eq!(pc_regnum, 32);
    let pc = client.read_register(pc_regnum).unwrap();
    assert_eq!(u64::from_le_bytes(pc.try_into().unwrap()), regs.pc());
    let status = target.monitor("info status").unwrap();
    assert!(status.contains("VM status"), "{status:?}");

    // Let OpenSBI run, then a snapshot-style halt/read/resume.
    target.resume().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    {
        let mut g = HaltGuard::new(&mut target).unwrap();
        assert_eq!(g.stop_reason(), StopReason::Interrupted);
        let mut again = vec![0u8; 64];
        g.read_memory(RAM, &mut again).unwrap();
        assert_eq!(again, phys[..64], "firmware entry code is unchanged");
        g.resume().unwrap();
    }
    assert!(!target.is_halted());
    target.detach().unwrap();

    // The detach freed the stub: a second debugger can attach, and Drop detaches it.
    let mut second = qemu.connect(false);
    let mut word = [0u8; 8];
    second.read_memory(RAM, &mut word).unwrap();
    assert_eq!(word, phys[..8]);
    drop(second);
}

/// Address of `name` in the kernel ELF's symbol table.
fn symbol(elf: &[u8], name: &str) -> u64 {
    let file = object::File::parse(elf).expect("parse build/kernel.elf");
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("no `{name}` symbol in build/kernel.elf"))
        .address()
}

#[test]
#[ignore = "boots QEMU: run with make test"]
fn kernel_tracker_header_is_readable_at_every_halt() {
    let path = common::qemu::kernel_elf();
    let elf = std::fs::read(&path).expect("build/kernel.elf: run `make kernel` first");
    let header = symbol(&elf, "alloc_tracker");
    const MAGIC: u64 = u64::from_le_bytes(*b"LEAKSCOP");

    // `churn` keeps a user process allocating, so some halts land in user mode.
    let mut qemu = Qemu::start_kernel(path.to_str().unwrap(), b"churn 100000\n");
    let mut target = qemu.connect(true);
    assert!(target.physical_memory());
    let read_magic = |t: &mut RspTarget| -> (u64, u64) {
        let mut g = HaltGuard::new(t).unwrap();
        let mut word = [0u8; 8];
        g.read_memory(header, &mut word).unwrap();
        let pc = g.read_registers().unwrap().pc();
        (u64::from_le_bytes(word), pc)
    };

    // Wait for the tracker to be initialised (the kernel sets the magic early in boot).
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_magic(&mut target).0 != MAGIC {
        assert!(
            Instant::now() < deadline,
            "alloc_tracker.magic never became LEAKSCOP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Halt until a few halts landed in user mode (the CPU then runs on the process's page
    // table), checking the kernel read at each; 10 s at most.
    let (mut halts, mut user_halts) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while user_halts < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let (magic, pc) = read_magic(&mut target);
        assert_eq!(magic, MAGIC, "kernel address read at pc={pc:#x}");
        halts += 1;
        if pc < 0x8000_0000 {
            user_halts += 1;
        }
    }
    eprintln!("{halts} halts, {user_halts} of them in user mode");
    assert!(
        user_halts > 0,
        "no halt landed in user mode in 10 s: did `churn` start?"
    );
    target.detach().unwrap();
}
