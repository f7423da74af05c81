//! The TUI's debugger source (`DebugSource`) with two harts, on an in-memory target holding the
//! Rust tracker fixture (real DWARF): a breakpoint stop on hart 1 names hart 1 and the process
//! the process table puts on it; `NextHart` shows hart 0 (its own pc and registers) and says
//! where the stop was; a step then moves hart 0 alone. No QEMU.

mod common;

use inspector::debugger::live::{DebugCommand, DebugReport, DebugSource, DebugState, Debuggable};
use inspector::debugger::StopView;
use inspector::dwarf::DebugInfo;
use inspector::riscv::Registers;
use inspector::source::Source;
use inspector::target::{BreakpointKind, MemTarget, StopReason, Target, TargetError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `MemTarget` the test keeps a handle on while the source owns "its" target.
struct Shared(Arc<Mutex<MemTarget>>);

impl Target for Shared {
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        self.0.lock().unwrap().halt()
    }
    fn resume(&mut self) -> Result<(), TargetError> {
        self.0.lock().unwrap().resume()
    }
    fn is_halted(&self) -> bool {
        self.0.lock().unwrap().is_halted()
    }
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.0.lock().unwrap().read_memory(addr, buf)
    }
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.0.lock().unwrap().write_memory(addr, data)
    }
    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        self.0.lock().unwrap().read_registers()
    }
    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        self.0.lock().unwrap().set_breakpoint(addr)
    }
    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        self.0.lock().unwrap().remove_breakpoint(addr)
    }
    fn step(&mut self) -> Result<StopReason, TargetError> {
        self.0.lock().unwrap().step()
    }
    fn wait_for_stop(&mut self, t: Duration) -> Result<Option<StopReason>, TargetError> {
        self.0.lock().unwrap().wait_for_stop(t)
    }
    fn detach(&mut self) -> Result<(), TargetError> {
        self.0.lock().unwrap().detach()
    }
    fn stopped_hart(&self) -> Option<u32> {
        self.0.lock().unwrap().stopped_hart()
    }
    fn harts(&mut self) -> Result<Vec<u32>, TargetError> {
        self.0.lock().unwrap().harts()
    }
    fn select_hart(&mut self, hart: u32) -> Result<(), TargetError> {
        self.0.lock().unwrap().select_hart(hart)
    }
    fn selected_hart(&self) -> Option<u32> {
        self.0.lock().unwrap().selected_hart()
    }
}

fn stopped(r: &DebugReport) -> &StopView {
    match &r.state {
        DebugState::Stopped(v) => v,
        DebugState::Running => panic!("expected a stop: {r:?}"),
    }
}

#[test]
fn a_stop_on_one_hart_names_its_process_and_h_switches_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object(dir.path());
    let info = DebugInfo::load(&elf).unwrap();
    let track_alloc = info.elf().symbol("track_alloc").unwrap().address;
    let mut mem = MemTarget::new().with_harts(2);
    for (addr, bytes) in common::fixtures::memory_regions(&info) {
        mem.add_region(addr, bytes);
    }
    // Pid 3 (`leak`, record 3 of proc_table) runs on hart 1.
    let procs = {
        let s = inspector::snapshot::Sampler::new(Arc::new(info)).unwrap();
        s.layout().procs.clone().unwrap()
    };
    for (field, value) in [("state", 2u64), ("hart", 1)] {
        let f = procs.record.require(field).unwrap();
        let at = procs.array.element_address(procs.address, 3) + f.offset;
        mem.poke(at, &value.to_le_bytes()[..f.size as usize]);
    }
    let hart0_pc = track_alloc + 0x40;
    mem.set_hart_register(0, inspector::riscv::PC, hart0_pc);
    let shared = Arc::new(Mutex::new(mem));
    let handle = shared.clone();
    let connector: inspector::source::session::Connector =
        Arc::new(move || Ok(Box::new(Shared(handle.clone())) as Box<dyn Target + Send>));
    let mut src = DebugSource::new(elf, "unused".into())
        .unwrap()
        .with_connector(connector);
    src.sample().expect("first sample connects");
    src.command(DebugCommand::ToggleBreakpoint("track_alloc".into()))
        .unwrap();

    shared.lock().unwrap().hit_on(1, track_alloc);
    src.sample().expect("sample at the stop");
    let r = src.take_stop_report().expect("the stop is reported");
    let v = stopped(&r);
    assert_eq!((v.hart, v.stopped_hart), (Some(1), Some(1)));
    assert_eq!(v.harts, [0, 1]);
    assert_eq!(v.pc, track_alloc);
    assert_eq!(v.process.as_deref(), Some("leak(3)"));
    let msg = r.message.as_deref().unwrap();
    assert!(msg.contains("on hart 1 (leak(3))"), "{msg}");

    let r = src.command(DebugCommand::NextHart).unwrap();
    let v = stopped(&r);
    assert_eq!((v.hart, v.stopped_hart), (Some(0), Some(1)));
    assert_eq!(v.pc, hart0_pc, "hart 0's own registers");
    assert_eq!(v.process, None, "nothing runs on hart 0: idle");

    // A step steps the hart shown, alone.
    let r = src.command(DebugCommand::StepInstruction).unwrap();
    assert_eq!(stopped(&r).pc, hart0_pc + 4);
    assert_eq!(stopped(&r).hart, Some(0));
    let r = src.command(DebugCommand::NextHart).unwrap();
    assert_eq!(stopped(&r).hart, Some(1));
    assert_eq!(stopped(&r).pc, track_alloc, "hart 1 did not move");

    src.command(DebugCommand::Continue).unwrap();
    src.detach();
    assert!(shared.lock().unwrap().is_detached());
}
