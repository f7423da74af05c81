//! Never waiting with the guest halted, and stopping long operations on the shutdown flag,
//! without QEMU: a line step that would take 200,000 instructions and a `finish` whose call
//! never returns end promptly with `Cancelled` (halted, temporary breakpoint removed); waiting
//! for a booting kernel (tracker not initialised) returns at once while the guest is held and
//! otherwise runs the guest between attempts; with a breakpoint armed, `DebugSource` waits for
//! the booting kernel with the guest running (checked on a fake stub's run state).
//!
//! Run: `cargo test -p inspector --test shutdown_units`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_stub::{FakeStub, FakeStubConfig};
use inspector::debugger::live::{DebugCommand, DebugSource, Debuggable};
use inspector::debugger::stepping::{run_to, MAX_INSTRUCTIONS_PER_LINE};
use inspector::debugger::{CallPolicy, Debugger, Stepper};
use inspector::dwarf::DebugInfo;
use inspector::riscv::{Registers, PC, SP};
use inspector::snapshot::Sampler;
use inspector::source::{sample_when_ready, NotReady, Source};
use inspector::target::{
    BreakpointKind, Cancelled, MemTarget, ShutdownFlag, StopReason, Target, TargetError,
};

fn rust_fixture(dir: &std::path::Path) -> (std::path::PathBuf, Arc<DebugInfo>) {
    let obj = common::fixtures::rust_tracker_object(dir);
    let info = Arc::new(DebugInfo::load(&obj).unwrap());
    (obj, info)
}

/// Raises `flag` after `after`, from another thread (as a signal handler or the TUI's quit).
fn raise_later(flag: &ShutdownFlag, after: Duration) -> std::thread::JoinHandle<()> {
    let f = flag.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        f.set();
    })
}

/// A MemTarget whose guest is stuck: a single step leaves pc where it is (a `j .`), and a
/// running guest never stops by itself (`wait_for_stop` sleeps out its timeout).
struct Stuck {
    inner: MemTarget,
}

impl Target for Stuck {
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        self.inner.halt()
    }
    fn resume(&mut self) -> Result<(), TargetError> {
        self.inner.resume()
    }
    fn is_halted(&self) -> bool {
        self.inner.is_halted()
    }
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.inner.read_memory(addr, buf)
    }
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.inner.write_memory(addr, data)
    }
    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        self.inner.read_registers()
    }
    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        self.inner.set_breakpoint(addr)
    }
    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        self.inner.remove_breakpoint(addr)
    }
    fn step(&mut self) -> Result<StopReason, TargetError> {
        let pc = self.inner.read_registers()?.pc();
        self.inner.step()?;
        self.inner.set_register(PC, pc);
        std::thread::sleep(Duration::from_micros(50)); // a round trip to a stub
        Ok(StopReason::Trap)
    }
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        if self.inner.is_halted() {
            return Ok(Some(StopReason::AlreadyHalted));
        }
        std::thread::sleep(timeout);
        Ok(None)
    }
    fn detach(&mut self) -> Result<(), TargetError> {
        self.inner.detach()
    }
}

fn stuck_at(pc: u64) -> Stuck {
    let mut t = MemTarget::new();
    t.set_register(PC, pc);
    t.set_register(SP, 0x8100_0000);
    t.halt().unwrap();
    Stuck { inner: t }
}

#[test]
fn a_line_step_that_never_ends_is_cancelled_by_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (_, info) = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let mut dbg = Debugger::new(info.clone());
    let mut t = stuck_at(f.low + 8);
    let mut stepper = Stepper::new(&dbg, &mut t, CallPolicy::Over).unwrap();
    let flag = ShutdownFlag::new();
    stepper.cancel = flag.clone();
    let raiser = raise_later(&flag, Duration::from_millis(100));
    let start = Instant::now();
    let r = stepper.next_line(&mut dbg, &mut t);
    raiser.join().unwrap();
    let err = r.expect_err("cancelled, not a line or the limit");
    assert!(Cancelled::is(&err), "{err:#}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let steps = t.inner.stats().steps;
    assert!(
        steps > 0 && steps < MAX_INSTRUCTIONS_PER_LINE,
        "stopped part way: {steps} steps"
    );
    assert!(t.is_halted(), "halted where it stopped, for the detach");
}

#[test]
fn waiting_for_a_call_that_never_returns_is_cancelled_and_its_breakpoint_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, info) = rust_fixture(dir.path());
    let f = info.function("track_alloc").unwrap();
    let mut dbg = Debugger::new(info.clone());
    let mut t = stuck_at(f.low);
    let flag = ShutdownFlag::new();
    let raiser = raise_later(&flag, Duration::from_millis(150));
    let start = Instant::now();
    let r = run_to(
        &mut dbg,
        &mut t,
        f.low + 4,
        0x8100_0000,
        Duration::from_secs(60),
        &flag,
    );
    raiser.join().unwrap();
    let err = r.expect_err("cancelled");
    assert!(Cancelled::is(&err), "{err:#}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(t.is_halted());
    assert_eq!(
        t.inner.breakpoints().count(),
        0,
        "the temporary breakpoint is gone"
    );
}

/// The fixture's memory in a running MemTarget, its sampler, and the header's `magic` field.
fn booting_kernel(info: &Arc<DebugInfo>) -> (MemTarget, Sampler) {
    let mut t = MemTarget::new();
    for s in info.elf().sections() {
        if s.size > 0 {
            let bytes = match &s.data {
                Some(d) => d.to_vec(),
                None => vec![0; s.size as usize],
            };
            t.add_region(s.address, bytes);
        }
    }
    let sampler = Sampler::new(info.clone()).unwrap();
    let (addr, layout) = sampler.layout().header.clone().unwrap();
    let magic = layout.require("magic").unwrap();
    t.poke(addr + magic.offset, &vec![0; magic.size as usize]);
    (t, sampler)
}

#[test]
fn a_held_guest_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let (_, info) = rust_fixture(dir.path());
    let (mut t, mut sampler) = booting_kernel(&info);
    t.halt().unwrap(); // the debugger holds it
    let start = Instant::now();
    let err = sample_when_ready(
        &mut sampler,
        &mut t,
        Duration::from_secs(10),
        &ShutdownFlag::new(),
    )
    .unwrap_err();
    assert!(
        matches!(NotReady::find(&err), Some(NotReady::Held)),
        "{err:#}"
    );
    assert!(
        format!("{err:#}").contains("continue it"),
        "says what to do: {err:#}"
    );
    assert!(start.elapsed() < Duration::from_secs(1), "returned at once");
    assert!(t.is_halted(), "the user's hold is kept");
    assert_eq!(t.stats().resumes, 0);
}

#[test]
fn a_running_booting_guest_runs_between_attempts_and_the_wait_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (_, info) = rust_fixture(dir.path());
    let (mut t, mut sampler) = booting_kernel(&info);
    let err = sample_when_ready(
        &mut sampler,
        &mut t,
        Duration::from_millis(350),
        &ShutdownFlag::new(),
    )
    .unwrap_err();
    assert!(
        matches!(NotReady::find(&err), Some(NotReady::Booting { .. })),
        "{err:#}"
    );
    assert!(!t.is_halted(), "left running");
    let s = t.stats();
    assert!(s.halts >= 2, "tried again: {s:?}");
    assert_eq!(s.halts, s.resumes, "resumed after every attempt: {s:?}");

    // And the shutdown flag ends a long wait.
    let flag = ShutdownFlag::new();
    let raiser = raise_later(&flag, Duration::from_millis(100));
    let start = Instant::now();
    let err = sample_when_ready(&mut sampler, &mut t, Duration::from_secs(30), &flag).unwrap_err();
    raiser.join().unwrap();
    assert!(Cancelled::is(&err), "{err:#}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(!t.is_halted());
}

/// With a breakpoint armed, `DebugSource::sample` halts the guest itself before each sample;
/// while the kernel boots it must let it run between attempts, not wait with it halted (it
/// would then boot only in the gaps between samples).
#[test]
fn an_armed_debug_source_waits_for_a_booting_kernel_with_the_guest_running() {
    let dir = tempfile::tempdir().unwrap();
    let (elf, info) = rust_fixture(dir.path());
    let regions = common::fixtures::memory_regions(&info);
    let stub = FakeStub::spawn(FakeStubConfig {
        regions,
        ..FakeStubConfig::default()
    });
    let sampler = Sampler::new(info.clone()).unwrap();
    let (hdr, layout) = sampler.layout().header.clone().unwrap();
    let magic = layout.require("magic").unwrap();
    let magic_at = hdr + magic.offset;
    let good: Vec<u8> = {
        let s = stub.shared();
        let (start, bytes) = s
            .regions
            .iter()
            .find(|(a, b)| *a <= magic_at && magic_at < a + b.len() as u64)
            .unwrap();
        let off = (magic_at - start) as usize;
        bytes[off..off + magic.size as usize].to_vec()
    };

    let mut src = DebugSource::new(elf, stub.addr.clone()).unwrap();
    src.sample().expect("a first sample connects");
    let r = src
        .command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();
    assert_eq!(r.breakpoints.len(), 1);

    // The kernel "reboots": no tracker until it is initialised again, 1 s later.
    stub.poke(magic_at, &vec![0; magic.size as usize]);
    let done = AtomicBool::new(false);
    let (running, total, result) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            stub.poke(magic_at, &good);
        });
        let watcher = s.spawn(|| {
            let (mut running, mut total) = (0u32, 0u32);
            while !done.load(Ordering::SeqCst) {
                running += u32::from(stub.shared().running);
                total += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (running, total)
        });
        let result = src.sample();
        done.store(true, Ordering::SeqCst);
        let (running, total) = watcher.join().unwrap();
        (running, total, result)
    });
    result.expect("the sample succeeds once the tracker is initialised");
    assert!(total > 50, "{total} observations");
    assert!(
        running * 2 > total,
        "the guest ran only {running} of {total} observations while the kernel booted"
    );
    src.detach();
}
