//! The snapshot reader on the chapter's bare layout (gcc DWARF of tests/fixtures/chapter_tracker.c:
//! `alloc_table`, `alloc_table_count`, `proc_table`, `track_alloc`; no header, no generation
//! counter, no event ring), against in-memory targets:
//! - a read is never taken while the halted guest's pc is inside a function that writes the
//!   table: the guest runs briefly and is read again, within a bound; held there by a
//!   debugger, the last consistent snapshot comes back marked mid-change;
//! - events are derived by comparing successive snapshots.

mod common;

use inspector::dwarf::DebugInfo;
use inspector::model::EventKind;
use inspector::riscv::{Registers, PC};
use inspector::snapshot::{Sampler, SnapshotError, TrackerCode};
use inspector::target::{BreakpointKind, MemTarget, StopReason, Target, TargetError};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    info: Arc<DebugInfo>,
    sampler: Sampler,
    memory: MemTarget,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let info =
        Arc::new(DebugInfo::load(common::fixtures::chapter_tracker_object(dir.path())).unwrap());
    let mut memory = MemTarget::new();
    for (addr, bytes) in common::fixtures::memory_regions(&info) {
        memory.add_region(addr, bytes);
    }
    let sampler = Sampler::new(info.clone()).unwrap();
    Fixture {
        _dir: dir,
        info,
        sampler,
        memory,
    }
}

impl Fixture {
    /// `track_alloc`'s code, from DWARF.
    fn track_alloc(&self) -> Range<u64> {
        let f = self
            .info
            .functions()
            .iter()
            .find(|f| f.name == "track_alloc")
            .expect("the fixture defines track_alloc");
        f.low_pc..f.high_pc
    }

    /// An address in no tracker function: the table itself.
    fn elsewhere(&self) -> u64 {
        self.sampler.layout().table.address
    }

    /// Sets `used` of table slot `slot`, as the guest would.
    fn set_used(&mut self, slot: u64, used: u32) {
        let table = self.sampler.layout().table.clone();
        let at = table.array.element_address(table.address, slot);
        let f = table.record.require("used").unwrap();
        self.memory
            .poke(at + f.offset, &used.to_le_bytes()[..f.size as usize]);
    }
}

/// A guest whose pc leaves `inside` for `outside` after it has been resumed `resumes` times:
/// a kernel halted in the middle of `track_alloc` that finishes the call once it runs.
struct Finishing {
    mem: MemTarget,
    resumes: u32,
    outside: u64,
}

impl Target for Finishing {
    fn halt(&mut self) -> Result<StopReason, TargetError> {
        self.mem.halt()
    }
    fn resume(&mut self) -> Result<(), TargetError> {
        if self.mem.is_halted() {
            if self.resumes == 0 {
                self.mem.set_register(PC, self.outside);
            } else {
                self.resumes -= 1;
            }
        }
        self.mem.resume()
    }
    fn is_halted(&self) -> bool {
        self.mem.is_halted()
    }
    fn read_memory(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        self.mem.read_memory(addr, buf)
    }
    fn write_memory(&mut self, addr: u64, data: &[u8]) -> Result<(), TargetError> {
        self.mem.write_memory(addr, data)
    }
    fn read_registers(&mut self) -> Result<Registers, TargetError> {
        self.mem.read_registers()
    }
    fn set_breakpoint(&mut self, addr: u64) -> Result<BreakpointKind, TargetError> {
        self.mem.set_breakpoint(addr)
    }
    fn remove_breakpoint(&mut self, addr: u64) -> Result<(), TargetError> {
        self.mem.remove_breakpoint(addr)
    }
    fn step(&mut self) -> Result<StopReason, TargetError> {
        self.mem.step()
    }
    fn wait_for_stop(&mut self, timeout: Duration) -> Result<Option<StopReason>, TargetError> {
        self.mem.wait_for_stop(timeout)
    }
    fn detach(&mut self) -> Result<(), TargetError> {
        self.mem.detach()
    }
}

fn balanced(t: &MemTarget) -> bool {
    let s = t.stats();
    s.halts == s.resumes && !t.is_halted()
}

#[test]
fn the_chapter_layout_has_no_generation_and_its_writers_come_from_dwarf() {
    let fx = fixture();
    assert!(!fx.sampler.layout().has_generation());
    let code = TrackerCode::resolve(&fx.info);
    let range = fx.track_alloc();
    assert_eq!(code.function_at(range.start), Some("track_alloc"));
    assert_eq!(code.function_at(range.end - 1), Some("track_alloc"));
    assert_eq!(code.function_at(range.end), None);
    assert_eq!(code.function_at(fx.elsewhere()), None);
}

#[test]
fn a_guest_halted_inside_track_alloc_runs_briefly_and_is_read_again() {
    let mut fx = fixture();
    let inside = fx.track_alloc().start + 4;
    let mut memory = fx.memory.clone();
    memory.set_register(PC, inside);
    let mut guest = Finishing {
        mem: memory,
        resumes: 3,
        outside: fx.elsewhere(),
    };
    let snap = fx.sampler.sample(&mut guest).unwrap();
    assert!(!snap.mid_change);
    assert_eq!(snap.entries.len(), 3, "the fixture's three entries");
    let s = guest.mem.stats();
    assert_eq!(
        (s.halts, s.resumes),
        (5, 5),
        "halted inside four times (resumed each time), read at the fifth"
    );
    assert!(balanced(&guest.mem));
}

#[test]
fn a_guest_that_never_leaves_track_alloc_is_not_read_and_keeps_running() {
    let mut fx = fixture();
    fx.memory.set_register(PC, fx.track_alloc().start);
    match fx.sampler.sample(&mut fx.memory) {
        Err(SnapshotError::Torn) => {}
        other => panic!("expected Torn after the bound, got {other:?}"),
    }
    assert!(balanced(&fx.memory), "every halt was followed by a resume");
    assert!(
        fx.memory.stats().halts > 1,
        "it let the guest run and tried again"
    );
}

#[test]
fn a_guest_held_inside_track_alloc_gives_the_last_snapshot_marked_mid_change() {
    let mut fx = fixture();
    fx.memory.set_register(PC, fx.elsewhere());
    let first = fx.sampler.sample(&mut fx.memory).unwrap();
    // A debugger holds the guest at a breakpoint inside track_alloc, half-way through a change.
    fx.memory.halt().unwrap();
    fx.memory.set_register(PC, fx.track_alloc().start + 8);
    fx.set_used(1, 0);
    let held = fx.sampler.sample(&mut fx.memory).unwrap();
    assert!(held.mid_change);
    assert_eq!(held.entries, first.entries, "the last consistent state");
    assert!(held.events.is_empty());
    assert!(fx.memory.is_halted(), "the debugger's hold is left alone");
    // Held outside the tracker's code: read in place.
    fx.memory.set_register(PC, fx.elsewhere());
    let read = fx.sampler.sample(&mut fx.memory).unwrap();
    assert!(!read.mid_change);
    assert_eq!(read.entries.len(), 2);
    assert!(fx.memory.is_halted());
}

#[test]
fn events_are_derived_by_comparing_snapshots() {
    let mut fx = fixture();
    fx.memory.set_register(PC, fx.elsewhere());
    let first = fx.sampler.sample(&mut fx.memory).unwrap();
    assert!(
        first.events.is_empty(),
        "nothing to compare the first one with"
    );
    assert_eq!(first.header.event_head, 0);

    // Slot 1 belongs to pid 3, a zombie in the fixture's proc_table, and it is its last
    // entry: an exit's reclaim. Slot 0 belongs to the kernel: a free.
    fx.set_used(1, 0);
    fx.set_used(0, 0);
    let second = fx.sampler.sample(&mut fx.memory).unwrap();
    let got: Vec<_> = second
        .events
        .iter()
        .map(|e| (e.seq, e.kind.clone(), e.owner, e.slot, &*e.tag))
        .collect();
    assert_eq!(
        got,
        [
            (0, EventKind::Free, 0, Some(0), "kernel_heap"),
            (1, EventKind::ExitReclaim, 3, Some(1), "alloc_pages"),
        ]
    );
    assert_eq!(second.header.event_head, 2);

    // Slot 1 in use again: an allocation, numbered on.
    fx.set_used(1, 1);
    let third = fx.sampler.sample(&mut fx.memory).unwrap();
    let got: Vec<_> = third
        .events
        .iter()
        .map(|e| (e.seq, e.kind.clone()))
        .collect();
    assert_eq!(got, [(2, EventKind::Alloc)]);
    assert_eq!(third.header.event_head, 3);

    // A reconnect forgets the previous snapshot but not the numbering: a viewer that
    // de-duplicates by sequence number sees no reboot.
    fx.sampler.reset();
    let fourth = fx.sampler.sample(&mut fx.memory).unwrap();
    assert!(fourth.events.is_empty());
    assert_eq!(fourth.header.event_head, 3);
    assert!(balanced(&fx.memory));
}

#[test]
fn the_ram_file_reader_refuses_a_kernel_without_a_generation_counter() {
    let mut fx = fixture();
    fx.memory.halt().unwrap(); // MemTarget serves GuestMemory reads only when halted
    match fx.sampler.sample_live(&mut fx.memory) {
        Err(e @ SnapshotError::NoGeneration) => {
            assert!(e.to_string().contains("--gdb"), "says what to do: {e}")
        }
        other => panic!("expected NoGeneration, got {other:?}"),
    }
}

#[test]
fn a_dump_is_read_as_it_is_when_no_hart_was_inside_a_writer() {
    let mut fx = fixture();
    assert!(fx.sampler.needs_quiescence());
    let inside = fx.track_alloc().start + 2;
    assert_eq!(
        fx.sampler.writer_at(&[fx.elsewhere(), inside]),
        Some("track_alloc"),
        "any hart inside a writer counts"
    );
    assert_eq!(fx.sampler.writer_at(&[fx.elsewhere()]), None);
    // A still image (halted here) reads as the halted read does, with the same entries.
    fx.memory.halt().unwrap();
    let still = fx.sampler.sample_still(&mut fx.memory).unwrap();
    fx.memory.resume().unwrap();
    let halted = fx.sampler.sample(&mut fx.memory).unwrap();
    assert!(!still.entries.is_empty());
    assert_eq!(still.entries, halted.entries);
    assert_eq!(still.header.count, halted.header.count);
    assert_eq!(still.procs, halted.procs);
}
