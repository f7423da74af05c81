//! The snapshot reader against an in-memory target holding the Rust tracker fixture (real rustc
//! DWARF for riscv64, the kernel's own ABI types): decoding by field name, reading only what
//! changed, the event ring (including overrun), torn states, and that the guest always resumes.

mod common;

use inspector::dwarf::{DebugInfo, FieldLayout};
use inspector::model::EventKind;
use inspector::snapshot::{Sampler, SnapshotError};
use inspector::target::{MemTarget, Target};
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    info: Arc<DebugInfo>,
    target: MemTarget,
    sampler: Sampler,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let info =
        Arc::new(DebugInfo::load(common::fixtures::rust_tracker_object(dir.path())).unwrap());
    let mut target = MemTarget::new();
    for s in info.elf().sections() {
        if s.size == 0 {
            continue;
        }
        let bytes = match &s.data {
            Some(d) => d.to_vec(),
            None => vec![0; s.size as usize],
        };
        target.add_region(s.address, bytes);
    }
    let sampler = Sampler::new(info.clone()).unwrap();
    Fixture {
        _dir: dir,
        info,
        target,
        sampler,
    }
}

impl Fixture {
    fn header_field(&self, name: &str) -> (u64, FieldLayout) {
        let (addr, layout) = self.sampler.layout().header.clone().unwrap();
        (addr, layout.require(name).unwrap().clone())
    }

    fn poke(&mut self, addr: u64, f: &FieldLayout, value: u64) {
        self.target
            .poke(addr + f.offset, &value.to_le_bytes()[..f.size as usize]);
    }

    fn set_header(&mut self, name: &str, value: u64) {
        let (addr, f) = self.header_field(name);
        self.poke(addr, &f, value);
    }

    /// Writes an Alloc (kind 1) or Free (2) event for `slot`, with the tag of table slot 1
    /// (`alloc_pages`); the table itself is left alone.
    fn put_slot_event(&mut self, seq: u64, kind: u32, slot: u32, pa: u64, npages: u64) {
        let ring = self.sampler.layout().events.clone().unwrap();
        let table = self.sampler.layout().table.clone();
        let at = ring
            .array
            .element_address(ring.address, seq % ring.array.len);
        for (name, v) in [("seq", seq), ("owner", 9), ("pa", pa), ("npages", npages)] {
            let f = ring.record.require(name).unwrap().clone();
            self.poke(at, &f, v);
        }
        for (name, v) in [("kind", kind), ("slot", slot)] {
            let f = ring.record.require(name).unwrap();
            self.target.poke(at + f.offset, &v.to_le_bytes());
        }
        let (src, dst) = (
            table.record.require("tag").unwrap(),
            ring.record.require("tag").unwrap(),
        );
        let mut tag = vec![0; src.size as usize];
        let slot1 = table.array.element_address(table.address, 1);
        inspector::target::Target::halt(&mut self.target).unwrap();
        inspector::target::Target::read_memory(&mut self.target, slot1 + src.offset, &mut tag)
            .unwrap();
        inspector::target::Target::resume(&mut self.target).unwrap();
        self.target.poke(at + dst.offset, &tag);
    }

    fn set_count(&mut self, n: u64) {
        let g = self.info.global("alloc_table_count").unwrap();
        self.target
            .poke(g.address, &n.to_le_bytes()[..g.size as usize]);
    }

    /// Writes an event record at its ring index, with a tag copied from an existing entry.
    fn put_event(&mut self, seq: u64, kind: u64, owner: u64) {
        let ring = self.sampler.layout().events.clone().unwrap();
        let at = ring
            .array
            .element_address(ring.address, seq % ring.array.len);
        for (name, v) in [
            ("seq", seq),
            ("kind", kind),
            ("owner", owner),
            ("pa", 0x8000_0000 + seq * 4096),
            ("npages", 1),
        ] {
            let f = ring.record.require(name).unwrap().clone();
            self.poke(at, &f, v);
        }
    }

    fn halted_balance(&self) -> bool {
        let s = self.target.stats();
        s.halts == s.resumes && !inspector::target::Target::is_halted(&self.target)
    }
}

#[test]
fn first_snapshot_decodes_entries_by_field_name() {
    let mut fx = fixture();
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    let got: Vec<_> = snap
        .entries
        .iter()
        .map(|e| (e.slot, e.pa, e.npages, e.owner, &*e.tag))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0x8020_0000, 4, 0, "kernel_heap"),
            (1, 0x8053_7000, 1, 3, "alloc_pages"),
            (3, 0x8100_0000, 16, 7, "user_stack"),
        ]
    );
    assert_eq!(
        (
            snap.header.count,
            snap.header.generation,
            snap.header.capacity
        ),
        (3, 42, 8192)
    );
    assert!(snap.table_read);
    assert!(
        fx.halted_balance(),
        "the guest must be resumed after a snapshot"
    );
    assert!(!fx.info.elf().symbols().is_empty());
}

#[test]
fn unchanged_generation_reads_no_table() {
    let mut fx = fixture();
    fx.sampler.sample(&mut fx.target).unwrap();
    let first = fx.target.stats().bytes_read;
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    let second = fx.target.stats().bytes_read - first;
    let stride = fx.sampler.layout().table.array.stride;
    assert!(!snap.table_read);
    assert_eq!(snap.entries.len(), 3, "entries carried over");
    // The first snapshot read slots 0..high_water (4); the second skipped exactly those.
    assert_eq!(
        first - second,
        4 * stride,
        "an unchanged table must not be read again"
    );

    // A change: slot 3 freed, generation moved by two → the table is read again.
    let table = fx.sampler.layout().table.clone();
    let used = table.record.require("used").unwrap().clone();
    fx.poke(table.array.element_address(table.address, 3), &used, 0);
    fx.set_header("generation", 44);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(snap.table_read);
    assert_eq!(
        snap.entries.iter().map(|e| e.slot).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(fx.halted_balance());
}

#[test]
fn odd_generation_is_retried_then_reported_never_torn() {
    let mut fx = fixture();
    fx.set_header("generation", 43);
    let err = fx.sampler.sample(&mut fx.target).unwrap_err();
    assert!(matches!(err, SnapshotError::Torn), "{err}");
    assert!(
        fx.target.stats().halts > 1,
        "it must let the guest run and retry"
    );
    assert!(fx.halted_balance(), "every retry resumes the guest");
}

#[test]
fn uninitialised_tracker_is_reported() {
    let mut fx = fixture();
    fx.set_header("magic", 0);
    let err = fx.sampler.sample(&mut fx.target).unwrap_err();
    assert!(
        matches!(err, SnapshotError::NotInitialised { found: 0 }),
        "{err}"
    );
    assert!(fx.halted_balance());
}

#[test]
fn events_are_read_incrementally_and_overruns_counted() {
    let mut fx = fixture();
    // The fixture's ring holds seq 0 (Alloc) and 1 (InvalidFree).
    fx.set_header("event_head", 2);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    let kinds: Vec<_> = snap.events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds, [EventKind::Alloc, EventKind::InvalidFree]);
    assert_eq!(&*snap.events[1].tag, "double_free");
    assert_eq!(snap.missed_events, 0);

    // Three more: only those are returned.
    for seq in 2..5 {
        fx.put_event(seq, 2, 9);
    }
    fx.set_header("event_head", 5);
    fx.set_header("generation", 44);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert_eq!(
        snap.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(snap
        .events
        .iter()
        .all(|e| e.kind == EventKind::Free && e.owner == 9));

    // The ring overruns: 1024 + 10 new events between two snapshots.
    let ring_len = fx.sampler.layout().events.as_ref().unwrap().array.len;
    let head = 5 + ring_len + 10;
    for seq in head - ring_len..head {
        fx.put_event(seq, 1, 4);
    }
    fx.set_header("event_head", head);
    fx.set_header("generation", 46);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert_eq!(snap.missed_events, 10);
    assert_eq!(snap.events.len() as u64, ring_len);
    assert_eq!(snap.events.first().unwrap().seq, head - ring_len);
    assert_eq!(snap.events.last().unwrap().seq, head - 1);
    assert!(
        snap.events.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "in order across the wrap"
    );
    assert!(fx.halted_balance());
}

#[test]
fn changes_are_followed_from_the_events_without_reading_the_table() {
    let mut fx = fixture();
    fx.set_header("event_head", 2);
    fx.set_header("tracked_pages", 4 + 1 + 16);
    fx.sampler.sample(&mut fx.target).unwrap();

    // An allocation at slot 5, told only by its event (the table in memory does not have it:
    // were the table read, slot 5 would not appear).
    fx.put_slot_event(2, 1, 5, 0x8070_0000, 2);
    fx.set_header("event_head", 3);
    fx.set_count(4);
    fx.set_header("tracked_pages", 23);
    fx.set_header("generation", 44);
    let before = fx.target.stats().bytes_read;
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(!snap.table_read, "followed from the events");
    let e = snap
        .entries
        .iter()
        .find(|e| e.slot == 5)
        .expect("slot 5 from its event");
    assert_eq!(
        (e.pa, e.npages, e.owner, &*e.tag),
        (0x8070_0000, 2, 9, "alloc_pages")
    );
    let stride = fx.sampler.layout().table.array.stride;
    assert!(
        fx.target.stats().bytes_read - before < 4 * stride + 1024 * 8,
        "no table read"
    );

    // Then slot 1 is freed: gone, the others stay.
    fx.put_slot_event(3, 2, 1, 0x8053_7000, 1);
    fx.set_header("event_head", 4);
    fx.set_count(3);
    fx.set_header("tracked_pages", 22);
    fx.set_header("generation", 46);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(!snap.table_read);
    assert_eq!(
        snap.entries.iter().map(|e| e.slot).collect::<Vec<_>>(),
        [0, 3, 5]
    );
    assert!(fx.halted_balance());
}

#[test]
fn events_that_do_not_account_for_the_new_state_make_it_read_the_table() {
    let mut fx = fixture();
    fx.set_header("event_head", 2);
    fx.set_header("tracked_pages", 21);
    fx.sampler.sample(&mut fx.target).unwrap();
    // An Alloc event, but the count says nothing was added: trust the table, not the ring.
    fx.put_slot_event(2, 1, 5, 0x8070_0000, 2);
    fx.set_header("event_head", 3);
    fx.set_header("generation", 44);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(
        snap.table_read,
        "inconsistent events must fall back to the table"
    );
    assert_eq!(
        snap.entries.iter().map(|e| e.slot).collect::<Vec<_>>(),
        [0, 1, 3]
    );
    // A missed event (ring overrun) also means reading the table.
    let ring_len = fx.sampler.layout().events.as_ref().unwrap().array.len;
    fx.set_header("event_head", 3 + ring_len + 1);
    fx.set_header("generation", 46);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert_eq!(snap.missed_events, 1);
    assert!(snap.table_read);
}

#[test]
fn a_guest_held_mid_change_shows_the_last_consistent_state_and_stays_held() {
    use inspector::target::Target;
    let mut fx = fixture();
    fx.set_header("event_head", 2);
    let first = fx.sampler.sample(&mut fx.target).unwrap();
    assert_eq!(first.events.len(), 2);

    // A debugger holds the guest inside a change: odd generation, an entry half-written.
    fx.target.halt().unwrap();
    fx.set_header("generation", 43);
    fx.put_event(2, 1, 9);
    fx.set_header("event_head", 3);
    let resumes = fx.target.stats().resumes;
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(snap.mid_change, "marked as not current");
    assert_eq!(snap.entries, first.entries, "the last consistent entries");
    assert!(snap.events.is_empty());
    assert!(fx.target.is_halted(), "a held guest stays held");
    assert_eq!(fx.target.stats().resumes, resumes);

    // Once the change is complete and the guest runs, the new event is not lost.
    fx.set_header("generation", 44);
    fx.target.resume().unwrap();
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(!snap.mid_change);
    assert_eq!(snap.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
}

#[test]
fn a_reboot_at_an_equal_generation_is_read_afresh() {
    let mut fx = fixture();
    fx.set_header("boot_nonce", 0x1111);
    let first = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(!first.rebooted);
    assert_eq!(first.entries.len(), 3);
    // The guest reboots and, by chance, its generation reaches the same value with another
    // table: only the boot nonce tells.
    let table = fx.sampler.layout().table.clone();
    let used = table.record.require("used").unwrap().clone();
    fx.poke(table.array.element_address(table.address, 3), &used, 0);
    fx.set_header("boot_nonce", 0x2222);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(snap.rebooted, "a new nonce is a reboot");
    assert!(snap.table_read, "nothing of the previous boot is reused");
    assert_eq!(
        snap.entries.iter().map(|e| e.slot).collect::<Vec<_>>(),
        [0, 1]
    );
    let again = fx.sampler.sample(&mut fx.target).unwrap();
    assert!(
        !again.rebooted && !again.table_read,
        "then unchanged as usual"
    );
    assert!(fx.halted_balance());
}

/// A header that says how much RAM the guest has bounds every read: a table span larger than
/// the guest's RAM is an error (the guest resumed), not an attempt to read it.
#[test]
fn reads_larger_than_the_guests_ram_are_refused() {
    let mut fx = fixture();
    fx.set_header("ram_pages", 16); // 64 KiB of RAM
    fx.set_header("high_water", 8192); // the whole table: 8192 records, more than 64 KiB
    let err = fx.sampler.sample(&mut fx.target).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::TooLarge {
                what: "alloc_table",
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("pass the ELF that QEMU booted"),
        "{err}"
    );
    assert!(
        fx.halted_balance(),
        "the guest runs again after the refusal"
    );

    // With RAM enough for the table, the same snapshot reads.
    fx.set_header("ram_pages", 32768);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    assert_eq!(snap.entries.len(), 3);
    assert!(fx.halted_balance());
}

/// A layout made by hand (not resolved from DWARF) that asks for absurd spans is refused
/// before the guest is halted at all.
#[test]
fn an_absurd_hand_made_layout_is_refused_before_halting() {
    let mut fx = fixture();
    let good = fx.sampler.layout().clone();
    let mut absurd = Vec::new();
    let mut huge_table = good.clone();
    huge_table.table.array.len = 1 << 40;
    absurd.push(huge_table);
    let mut zero_ring = good.clone();
    zero_ring.events.as_mut().unwrap().array.stride = 0;
    absurd.push(zero_ring);
    let mut huge_header = good.clone();
    huge_header.header.as_mut().unwrap().1.size = 1 << 40;
    absurd.push(huge_header);
    let mut wrapping = good.clone();
    wrapping.procs.as_mut().unwrap().address = u64::MAX - 8;
    absurd.push(wrapping);
    for layout in absurd {
        let mut sampler = Sampler::with_layout(layout, Box::new(|_, _| false));
        let err = sampler.sample(&mut fx.target).unwrap_err();
        assert!(matches!(err, SnapshotError::Layout(_)), "{err}");
        assert!(err.to_string().contains("implausible"), "{err}");
    }
    assert_eq!(fx.target.stats().halts, 0, "refused before any halt");
}

#[test]
fn the_process_table_says_which_hart_runs_a_process() {
    let mut fx = fixture();
    let procs = fx.sampler.layout().procs.clone().unwrap();
    // Pid 3 (`leak`, record 3) runs on hart 1; pid 1 (record 1) sleeps with a stale hart.
    let poke = |fx: &mut Fixture, i: u64, name: &str, v: u64| {
        let f = procs.record.require(name).unwrap().clone();
        fx.poke(procs.array.element_address(procs.address, i), &f, v);
    };
    // Read once before: a table that changed since is decoded again, not remembered.
    let before = fx.sampler.sample(&mut fx.target).unwrap();
    let harts: Vec<_> = before.procs.iter().map(|p| (p.pid, p.hart)).collect();
    assert_eq!(harts, [(1, None), (3, None)]);
    poke(&mut fx, 3, "state", 2); // Running
    poke(&mut fx, 3, "hart", 1);
    poke(&mut fx, 1, "hart", 0);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    let harts: Vec<_> = snap.procs.iter().map(|p| (p.pid, p.hart)).collect();
    assert_eq!(harts, [(1, None), (3, Some(1))]);
    assert_eq!(snap.on_hart(1).map(|p| p.label()), Some("leak(3)".into()));
    assert!(
        snap.on_hart(0).is_none(),
        "a sleeping process is on no hart"
    );
    // The table alone, read now (halted, as at a stop), says the same.
    fx.target.halt().unwrap();
    let now = fx.sampler.processes(&mut fx.target).unwrap();
    assert_eq!(now, snap.procs);
}

#[test]
fn a_process_table_without_harts_names_none() {
    let dir = tempfile::tempdir().unwrap();
    let elf = common::fixtures::rust_tracker_object_without_sites(dir.path());
    let info = Arc::new(DebugInfo::load(elf).unwrap());
    assert!(info.elf().symbol("proc_table").is_ok());
    let mut target = MemTarget::new();
    for (addr, bytes) in common::fixtures::memory_regions(&info) {
        target.add_region(addr, bytes);
    }
    let mut sampler = Sampler::new(info.clone()).unwrap();
    target.halt().unwrap();
    let procs = sampler.processes(&mut target).unwrap();
    assert!(!procs.is_empty());
    assert!(procs.iter().all(|p| p.hart.is_none()), "{procs:?}");
}

#[test]
fn entries_repeating_and_alternating_tags_and_owners_each_decode_as_their_own() {
    // Whole records of slots 0, 1 and 3 copied into later slots in an irregular pattern, each
    // with its own owner: what the decoder remembers of recent records must never leak into
    // a record that differs.
    let mut fx = fixture();
    let table = fx.sampler.layout().table.clone();
    let stride = table.array.stride as usize;
    let record = |fx: &mut Fixture, slot: u64| {
        let mut rec = vec![0; stride];
        let at = table.array.element_address(table.address, slot);
        fx.target.halt().unwrap();
        fx.target.read_memory(at, &mut rec).unwrap();
        fx.target.resume().unwrap();
        rec
    };
    let sources = [(0, "kernel_heap"), (1, "alloc_pages"), (3, "user_stack")];
    let originals: Vec<Vec<u8>> = sources.iter().map(|&(s, _)| record(&mut fx, s)).collect();
    let pattern = [0, 0, 1, 0, 2, 1, 1, 2, 0, 2, 2, 1, 0, 1, 2, 0];
    let owner = table.record.require("owner").unwrap().clone();
    let mut want = Vec::new();
    for (i, &k) in pattern.iter().enumerate() {
        let slot = 4 + i as u64;
        let at = table.array.element_address(table.address, slot);
        fx.target.poke(at, &originals[k]);
        let pid = [3, 3, 5, 3, 7, 7, 5][i % 7];
        fx.poke(at, &owner, pid);
        want.push((slot as usize, pid as u32, sources[k].1));
    }
    fx.set_header("high_water", 4 + pattern.len() as u64);
    fx.set_count(3 + pattern.len() as u64);
    let snap = fx.sampler.sample(&mut fx.target).unwrap();
    let got: Vec<_> = snap
        .entries
        .iter()
        .filter(|e| e.slot >= 4)
        .map(|e| (e.slot, e.owner, &*e.tag))
        .collect();
    assert_eq!(got, want);
}
