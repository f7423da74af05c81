//! Host tests of the tracker bookkeeping: fill, free, table full, invalid frees, exit sweep,
//! the generation protocol, the event ring, and a randomized check of the pa → slot index.

use super::*;
use std::collections::HashMap;

/// What the tracker reports through its test seam (`Tracker::observe`, `bump_generation`,
/// `release_fence`), per test thread: the generation after each store to it, and while
/// recording, every step of the protocol in program order.
pub(crate) mod probe {
    use std::cell::{Cell, RefCell};

    /// One step of the generation protocol, with the generation at that moment.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Step {
        /// A store to `generation`; the value stored.
        Generation(u64),
        /// A release fence.
        Fence(u64),
        /// A write of the tracker state (`what` names it).
        Write(&'static str, u64),
    }

    thread_local! {
        static GENERATION: Cell<Option<u64>> = const { Cell::new(None) };
        static STEPS: RefCell<Option<Vec<Step>>> = const { RefCell::new(None) };
    }

    fn record(step: Step) {
        STEPS.with(|w| {
            if let Some(log) = w.borrow_mut().as_mut() {
                log.push(step);
            }
        });
    }

    pub(crate) fn generation_stored(g: u64) {
        GENERATION.with(|c| c.set(Some(g)));
        record(Step::Generation(g));
    }

    pub(crate) fn fence(generation: u64) {
        record(Step::Fence(generation));
    }

    pub(crate) fn write(what: &'static str, generation: u64) {
        record(Step::Write(what, generation));
    }

    /// The generation as last stored by the tracker on this thread.
    pub(crate) fn generation() -> u64 {
        GENERATION
            .with(|c| c.get())
            .expect("no generation stored yet")
    }

    /// Runs `f`, returning what it returned and the protocol steps it made.
    pub(crate) fn steps_during<R>(f: impl FnOnce() -> R) -> (R, Vec<Step>) {
        STEPS.with(|w| *w.borrow_mut() = Some(Vec::new()));
        let r = f();
        let log = STEPS.with(|w| w.borrow_mut().take()).unwrap();
        (r, log)
    }
}

const PAGE: u64 = PAGE_SIZE;
const BASE: u64 = 0x8020_0000;
/// QEMU virt's `timebase-frequency`.
const TIMEBASE_HZ: u64 = 10_000_000;
const NONCE: u64 = 0x0123_4567_89ab_cdef;

/// Heap storage shaped like the kernel's statics.
pub(crate) struct Storage {
    table: Box<[AllocEntry; MAX_TRACKED_ALLOCS]>,
    count: usize,
    header: TrackerHeader,
    events: Box<[AllocEvent; EVENT_RING_LEN]>,
    index: Box<SlotIndex>,
}

impl Storage {
    pub(crate) fn new() -> Self {
        let mut s = Storage {
            table: vec![AllocEntry::EMPTY; MAX_TRACKED_ALLOCS]
                .try_into()
                .unwrap(),
            count: 0,
            header: TrackerHeader::EMPTY,
            events: vec![AllocEvent::EMPTY; EVENT_RING_LEN].try_into().unwrap(),
            index: Box::new(SlotIndex::EMPTY),
        };
        s.t().init(BASE, 32768, BASE, 32768, TIMEBASE_HZ, NONCE);
        s
    }

    pub(crate) fn t(&mut self) -> Tracker<'_> {
        Tracker::new(
            &mut self.table,
            &mut self.count,
            &mut self.header,
            &mut self.events,
            &mut self.index,
        )
    }

    fn event(&self, seq: u64) -> AllocEvent {
        self.events[(seq % EVENT_RING_LEN as u64) as usize]
    }

    fn last_event(&self) -> AllocEvent {
        self.event(self.header.event_head - 1)
    }
}

fn pa(i: u64) -> u64 {
    BASE + i * PAGE
}

/// A free by process `pid` of one of its own user allocations (mapped in its heap window).
fn by(pid: Pid) -> FreeBy {
    FreeBy::Process { pid, mapped: true }
}

#[test]
fn init_stamps_header() {
    let s = Storage::new();
    assert_eq!(s.header.magic, TRACKER_MAGIC);
    assert_eq!(s.header.capacity as usize, MAX_TRACKED_ALLOCS);
    assert_eq!(s.header.ram_base, BASE);
    assert_eq!(s.header.generation % 2, 0);
}

#[test]
fn init_stamps_the_boot_nonce_in_the_same_change_and_later_changes_keep_it() {
    let mut s = Storage::new();
    assert_eq!(s.header.boot_nonce, NONCE);
    assert_eq!(
        s.header.generation, 2,
        "magic and nonce appear together in one change"
    );
    s.t().track_alloc(pa(0), 2, 3, "a", 0).unwrap();
    s.t().track_free(pa(0), 2, by(3), false, 0).unwrap();
    s.t().track_alloc(pa(4), 1, 3, "b", 0).unwrap();
    s.t().free_all_for_pid(3, 0, |_| {});
    let _ = s.t().track_free(pa(9), 1, FreeBy::Kernel, false, 0);
    assert_eq!(s.header.boot_nonce, NONCE);
}

#[test]
#[should_panic(expected = "boot nonce must not be 0")]
fn a_zero_boot_nonce_is_refused() {
    let mut s = Storage::new();
    s.t().init(BASE, 32768, BASE, 32768, TIMEBASE_HZ, 0);
}

#[test]
fn init_stamps_the_timebase_and_later_changes_keep_it() {
    let mut s = Storage::new();
    assert_eq!(s.header.timebase_hz, TIMEBASE_HZ);
    s.t()
        .track_alloc(pa(0), 2, 3, "a", 5 * TIMEBASE_HZ)
        .unwrap();
    s.t()
        .track_free(pa(0), 2, by(3), false, 6 * TIMEBASE_HZ)
        .unwrap();
    s.t().free_all_for_pid(3, 7 * TIMEBASE_HZ, |_| {});
    assert_eq!(s.header.timebase_hz, TIMEBASE_HZ);
    assert_eq!(
        s.last_event().time / s.header.timebase_hz,
        6,
        "event times convert to seconds with the header's timebase"
    );
}

/// A site as the kernel records one for a program's request.
const USER_REQUEST: AllocSite = AllocSite {
    site: 0x8020_1234,
    user_site: 0x4000_0abc,
    user_program: "leak",
};

#[test]
fn sites_are_kept_in_the_entry_and_every_event_about_it() {
    let mut s = Storage::new();
    let slot = s
        .t()
        .track_alloc_at(pa(0), 2, 3, "alloc_pages", USER_REQUEST, 0)
        .unwrap();
    let e = s.table[slot];
    assert_eq!((e.site, e.user_site), (0x8020_1234, 0x4000_0abc));
    let alloc = s.last_event();
    assert_eq!(alloc.kind, EventKind::Alloc);
    assert_eq!(
        (alloc.site, alloc.user_site, alloc.user_program),
        (0x8020_1234, 0x4000_0abc, "leak")
    );
    // The sweep's ExitReclaim names the site and the exiting process's program (it may be gone
    // when a reader sees the event), but only for an entry with a user site.
    s.t().track_alloc(pa(4), 1, 3, "kstack", 0).unwrap();
    s.t()
        .free_all_for_program(3, "leak", 0, |e| assert_eq!(e.owner, 3));
    let user = s.event(s.header.event_head - 2);
    assert_eq!(user.kind, EventKind::ExitReclaim);
    assert_eq!(
        (user.site, user.user_site, user.user_program),
        (0x8020_1234, 0x4000_0abc, "leak")
    );
    let kernel_side = s.last_event();
    assert_eq!((kernel_side.user_site, kernel_side.user_program), (0, ""));
    // A slot reused without a site holds none of the old one.
    let slot = s.t().track_alloc(pa(8), 1, 0, "kstack", 0).unwrap();
    let e = s.table[slot];
    assert_eq!((e.site, e.user_site), (0, 0));
}

#[test]
fn a_free_and_a_refusal_carry_the_sites_they_concern() {
    let mut s = Storage::new();
    s.t()
        .track_alloc_at(pa(0), 1, 3, "alloc_pages", USER_REQUEST, 0)
        .unwrap();
    s.t().track_free(pa(0), 1, by(3), false, 0).unwrap();
    let free = s.last_event();
    assert_eq!((free.kind, free.user_site), (EventKind::Free, 0x4000_0abc));
    assert_eq!(
        free.user_program, "",
        "a Free's owner is alive: its process names it"
    );
    // An invalid free concerns no allocation: no site.
    let _ = s.t().track_free(pa(40), 1, by(3), false, 0);
    let refused = s.last_event();
    assert_eq!(refused.kind, EventKind::InvalidFree);
    assert_eq!(
        (refused.site, refused.user_site, refused.user_program),
        (0, 0, "")
    );
    // A full table's refusal names who asked.
    for i in 0..MAX_TRACKED_ALLOCS as u64 {
        s.t().track_alloc(pa(100 + i), 1, 1, "fill", 0).unwrap();
    }
    assert!(s
        .t()
        .track_alloc_at(pa(1 << 20), 1, 3, "alloc_pages", USER_REQUEST, 0)
        .is_err());
    let failed = s.last_event();
    assert_eq!(failed.kind, EventKind::AllocFailed);
    assert_eq!((failed.site, failed.user_program), (0x8020_1234, "leak"));
}

#[test]
fn fill_records_entries_counts_and_events() {
    let mut s = Storage::new();
    for i in 0..10 {
        let slot = s
            .t()
            .track_alloc(pa(i * 4), 1 + i % 3, 7, "heap", 100 + i)
            .unwrap();
        assert_eq!(slot, i as usize, "fresh slots are handed out in order");
    }
    assert_eq!(s.count, 10);
    assert_eq!(s.header.high_water, 10);
    assert_eq!(
        s.header.tracked_pages,
        (0..10).map(|i| 1 + i % 3).sum::<u64>()
    );
    assert_eq!(s.header.total_allocs, 10);
    assert_eq!(s.header.event_head, 10);
    let e = s.table[3];
    assert_eq!(
        (e.used, e.owner, e.pa, e.npages, e.tag, e.time),
        (1, 7, pa(12), 1, "heap", 103)
    );
    let ev = s.event(3);
    assert_eq!(
        (ev.seq, ev.kind, ev.pa, ev.npages, ev.owner),
        (3, EventKind::Alloc, pa(12), 1, 7)
    );
    assert_eq!(ev.slot, 3, "an Alloc event names the slot it filled");
}

#[test]
fn free_returns_entry_and_recycles_slot() {
    let mut s = Storage::new();
    for i in 0..5 {
        s.t().track_alloc(pa(i), 1, 2, "a", 0).unwrap();
    }
    let freed = s.t().track_free(pa(2), 1, by(2), false, 9).unwrap();
    assert_eq!((freed.pa, freed.owner, freed.tag), (pa(2), 2, "a"));
    assert_eq!(s.table[2].used, 0);
    assert_eq!(s.count, 4);
    assert_eq!(s.header.total_frees, 1);
    assert_eq!(
        (s.last_event().kind, s.last_event().slot),
        (EventKind::Free, 2)
    );
    assert!(s.t().find(pa(2)).is_none());
    // The freed slot is reused before any fresh one; the high-water mark does not move.
    assert_eq!(s.t().track_alloc(pa(100), 2, 3, "b", 0).unwrap(), 2);
    assert_eq!(s.header.high_water, 5);
}

#[test]
fn full_table_refuses_without_touching_entries() {
    let mut s = Storage::new();
    for i in 0..MAX_TRACKED_ALLOCS as u64 {
        s.t().track_alloc(pa(i), 1, 1, "fill", 0).unwrap();
    }
    let before = s.table.clone();
    assert_eq!(
        s.t().track_alloc(pa(1 << 20), 1, 1, "x", 0),
        Err(TableFull { first: true })
    );
    assert_eq!(
        s.t().track_alloc(pa(1 << 21), 1, 1, "x", 0),
        Err(TableFull { first: false })
    );
    assert_eq!(s.header.failed_allocs, 2);
    assert_eq!(s.count, MAX_TRACKED_ALLOCS);
    assert_eq!(*s.table, *before);
    assert_eq!(s.last_event().kind, EventKind::AllocFailed);
    // Space again after a free.
    s.t()
        .track_free(pa(5), 1, FreeBy::Kernel, false, 0)
        .unwrap();
    assert_eq!(s.t().track_alloc(pa(1 << 20), 1, 1, "x", 0), Ok(5));
}

#[test]
fn invalid_frees_are_classified_counted_and_harmless() {
    let mut s = Storage::new();
    s.t().track_alloc(pa(0), 4, 3, "big", 0).unwrap();
    s.t().track_alloc(pa(10), 1, 3, "small", 0).unwrap();
    let table_before = s.table.clone();
    let cases = [
        (pa(50), 1, FreeBy::Kernel, false, FreeError::Untracked),
        (pa(1), 1, by(3), false, FreeError::Untracked), // inside an allocation, not its start
        (pa(60), 1, FreeBy::Kernel, true, FreeError::DoubleFree),
        (pa(0), 1, by(3), false, FreeError::WrongSize { tracked: 4 }),
        (pa(10), 1, by(4), false, FreeError::NotOwner { owner: 3 }),
    ];
    for (i, (addr, n, owner, already_free, want)) in cases.into_iter().enumerate() {
        assert_eq!(s.t().track_free(addr, n, owner, already_free, 0), Err(want));
        assert_eq!(s.header.invalid_frees, i as u64 + 1);
        let ev = s.last_event();
        assert_eq!(
            (ev.kind, ev.pa, ev.tag, ev.slot),
            (EventKind::InvalidFree, addr, want.reason(), NO_SLOT)
        );
    }
    assert_eq!(*s.table, *table_before);
    assert_eq!(s.count, 2);
    assert_eq!(s.header.tracked_pages, 5);
    // A real double free: free once, then again.
    s.t().track_free(pa(10), 1, by(3), false, 0).unwrap();
    assert_eq!(
        s.t().track_free(pa(10), 1, by(3), true, 0),
        Err(FreeError::DoubleFree)
    );
}

#[test]
fn a_process_free_of_a_page_the_kernel_holds_for_it_is_refused_and_names_the_caller() {
    let mut s = Storage::new();
    s.t().track_alloc(pa(0), 1, 3, "user_stack", 0).unwrap();
    // Its own page, but not one of its user allocations (not mapped in its heap window).
    let own = FreeBy::Process {
        pid: 3,
        mapped: false,
    };
    assert_eq!(
        s.t().track_free(pa(0), 1, own, false, 0),
        Err(FreeError::NotOwner { owner: 3 })
    );
    let ev = s.last_event();
    assert_eq!(
        (ev.kind, ev.owner, ev.tag),
        (EventKind::InvalidFree, 3, "not_owner"),
        "the event names the process that asked, never NO_PID"
    );
    assert_eq!(s.t().find(pa(0)).unwrap().owner, 3, "the entry stays");
}

#[test]
fn invalid_free_events_name_the_process_that_asked() {
    let mut s = Storage::new();
    s.t().track_alloc(pa(0), 2, 3, "alloc_pages", 0).unwrap();
    s.t().track_alloc(pa(4), 1, 3, "pagetable", 0).unwrap();
    let cases = [
        (
            pa(0),
            2,
            FreeBy::Process {
                pid: 7,
                mapped: false,
            },
            false,
            7,
        ), // someone else's
        (pa(0), 1, by(3), false, 3), // wrong size
        (pa(1), 1, by(3), false, 3), // inside
        (pa(40), 1, by(9), true, 9), // double free
        (
            pa(4),
            1,
            FreeBy::Process {
                pid: 3,
                mapped: false,
            },
            false,
            3,
        ), // kernel-side page
        (pa(0), 1, FreeBy::Kernel, false, 3), // kernel: the entry's owner
        (pa(50), 1, FreeBy::Kernel, false, 0), // kernel, nothing there: 0
    ];
    for (addr, n, who, already_free, want) in cases {
        assert!(s.t().track_free(addr, n, who, already_free, 0).is_err());
        let ev = s.last_event();
        assert_eq!(
            (ev.kind, ev.owner),
            (EventKind::InvalidFree, want),
            "{who:?} at {addr:#x}"
        );
        assert_ne!(ev.owner, NO_PID);
    }
    assert_eq!(s.count, 2);
}

#[test]
fn exit_sweep_frees_exactly_the_pids_entries() {
    let mut s = Storage::new();
    for i in 0..30u64 {
        let owner = [0, 3, 4][(i % 3) as usize];
        s.t()
            .track_alloc(pa(i * 8), 1 + i % 4, owner, "mix", 0)
            .unwrap();
    }
    let pages_of = |s: &Storage, pid| {
        s.table
            .iter()
            .filter(|e| e.used == 1 && e.owner == pid)
            .map(|e| e.npages)
            .sum::<u64>()
    };
    let (want_pages, other_pages) = (pages_of(&s, 3), pages_of(&s, 4) + pages_of(&s, 0));
    let mut seen = Vec::new();
    let (allocs, pages) = s
        .t()
        .free_all_for_pid(3, 5, |e| seen.push((e.owner, e.pa, e.npages)));
    assert_eq!(allocs, 10);
    assert_eq!(pages, want_pages);
    assert!(seen.iter().all(|&(o, _, _)| o == 3));
    assert_eq!(seen.iter().map(|s| s.2).sum::<u64>(), want_pages);
    assert_eq!(s.count, 20);
    assert_eq!(s.header.tracked_pages, other_pages);
    assert_eq!(pages_of(&s, 3), 0);
    assert_eq!(
        (s.header.reclaimed_allocs, s.header.reclaimed_pages),
        (10, want_pages)
    );
    // One ExitReclaim event per swept entry, naming its slot (pid 3 had slots 1, 4, 7, …).
    let head = s.header.event_head;
    let swept: Vec<u32> = (head - 10..head)
        .map(|q| s.event(q))
        .inspect(|e| assert_eq!(e.kind, EventKind::ExitReclaim))
        .map(|e| e.slot)
        .collect();
    assert_eq!(swept, (0..10).map(|k| 1 + 3 * k).collect::<Vec<u32>>());
    // Swept addresses are gone from the index, others still found.
    for &(_, addr, _) in &seen {
        assert!(s.t().find(addr).is_none());
    }
    assert_eq!(s.t().find(pa(16)).unwrap().owner, 4);
    assert_eq!(
        s.t().free_all_for_pid(3, 6, |_| panic!("nothing left")),
        (0, 0)
    );
}

#[test]
fn generation_is_even_after_each_change_and_moves_by_two() {
    let mut s = Storage::new();
    let mut g = s.header.generation;
    s.t().track_alloc(pa(0), 1, 1, "a", 0).unwrap();
    assert_eq!(s.header.generation, g + 2);
    g += 2;
    let _ = s.t().track_free(pa(9), 1, FreeBy::Kernel, false, 0);
    assert_eq!(s.header.generation, g + 2);
    g += 2;
    s.t().free_all_for_pid(1, 0, |_| {});
    assert_eq!(s.header.generation, g + 2);
    assert_eq!(s.header.generation % 2, 0);
}

#[test]
fn event_ring_wraps_and_keeps_sequence_numbers() {
    let mut s = Storage::new();
    let n = EVENT_RING_LEN as u64 + 100;
    for i in 0..n {
        s.t().track_alloc(pa(2 * i), 1, 1, "r", i).unwrap();
        s.t()
            .track_free(pa(2 * i), 1, FreeBy::Kernel, false, i)
            .unwrap();
    }
    assert_eq!(s.header.event_head, 2 * n);
    for seq in 2 * n - EVENT_RING_LEN as u64..2 * n {
        assert_eq!(s.event(seq).seq, seq);
    }
}

#[test]
#[should_panic(expected = "already tracked")]
fn tracking_a_live_page_twice_is_a_broken_invariant() {
    let mut s = Storage::new();
    s.t().track_alloc(pa(0), 1, 1, "a", 0).unwrap();
    let _ = s.t().track_alloc(pa(0), 1, 2, "b", 0);
}

/// Random allocs, frees and sweeps against a HashMap model; after each step the index finds
/// every live address and only those, and the counters match the model.
#[test]
fn randomized_index_agrees_with_model() {
    let mut s = Storage::new();
    let mut model: HashMap<u64, (u64, Pid)> = HashMap::new();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for step in 0..60_000 {
        let r = next();
        // Addresses from a small range so probe runs collide and wrap.
        let addr = pa(r % 20_000);
        match r % 10 {
            0..=5 => {
                if !model.contains_key(&addr) && model.len() < MAX_TRACKED_ALLOCS {
                    let owner = 1 + (r >> 20) as u32 % 5;
                    s.t()
                        .track_alloc(addr, 1 + (r >> 8) % 3, owner, "rnd", 0)
                        .unwrap();
                    model.insert(addr, (1 + (r >> 8) % 3, owner));
                }
            }
            6..=8 => {
                let got = s.t().track_free(
                    addr,
                    model.get(&addr).map_or(1, |m| m.0),
                    FreeBy::Kernel,
                    false,
                    0,
                );
                assert_eq!(got.is_ok(), model.remove(&addr).is_some(), "step {step}");
            }
            _ => {
                if step % 97 == 0 {
                    let pid = 1 + (r >> 30) as u32 % 5;
                    s.t().free_all_for_pid(pid, 0, |_| {});
                    model.retain(|_, m| m.1 != pid);
                }
            }
        }
        if step % 1000 == 0 {
            assert_eq!(s.count, model.len());
            for (&addr, &(n, owner)) in &model {
                let e = s
                    .t()
                    .find(addr)
                    .copied()
                    .expect("live entry missing from index");
                assert_eq!((e.npages, e.owner), (n, owner));
            }
            assert_eq!(
                s.header.tracked_pages,
                model.values().map(|m| m.0).sum::<u64>()
            );
        }
    }
}

#[test]
fn free_pages_move_with_allocs_frees_and_sweeps_in_the_same_change() {
    let mut s = Storage::new(); // init with 32768 free pages
    let g = s.header.generation;
    s.t().track_alloc(pa(0), 4, 3, "a", 0).unwrap();
    s.t().track_alloc(pa(8), 2, 3, "b", 0).unwrap();
    s.t().track_alloc(pa(16), 1, 4, "c", 0).unwrap();
    assert_eq!(s.header.free_pages, 32768 - 7);
    assert_eq!(
        s.header.generation,
        g + 6,
        "no extra change to publish the count"
    );
    let _ = s.t().track_free(pa(0), 1, FreeBy::Kernel, false, 0); // refused: wrong size
    assert_eq!(s.header.free_pages, 32768 - 7);
    s.t()
        .track_free(pa(16), 1, FreeBy::Kernel, false, 0)
        .unwrap();
    assert_eq!(s.header.free_pages, 32768 - 6);
    s.t().free_all_for_pid(3, 0, |_| {});
    assert_eq!(s.header.free_pages, 32768);
    for i in 0..MAX_TRACKED_ALLOCS as u64 {
        s.t().track_alloc(pa(i), 1, 1, "fill", 0).unwrap();
    }
    let before = s.header.free_pages;
    assert!(s.t().track_alloc(pa(1 << 20), 3, 1, "x", 0).is_err());
    assert_eq!(
        s.header.free_pages, before,
        "a refused allocation takes nothing"
    );
}

/// Asserts the generation protocol around one operation: it wrote the state at least once,
/// every write happened with the generation odd, and afterwards the generation is even and
/// moved by exactly two per change (`changes`).
fn assert_changes<R>(
    s: &mut Storage,
    what: &str,
    changes: u64,
    op: impl FnOnce(&mut Storage) -> R,
) -> R {
    let before = s.header.generation;
    assert_eq!(before % 2, 0, "{what}: generation odd before the operation");
    let (r, steps) = probe::steps_during(|| op(s));
    assert_sequence_lock_shape(what, before, changes, &steps);
    let writes: Vec<_> = steps
        .iter()
        .filter_map(|s| match *s {
            probe::Step::Write(w, g) => Some((w, g)),
            _ => None,
        })
        .collect();
    assert!(!writes.is_empty(), "{what}: no write observed");
    for (write, g) in &writes {
        assert_eq!(
            g % 2,
            1,
            "{what}: {write} written with the generation even ({g})"
        );
        assert!(
            (before..before + 2 * changes).contains(g),
            "{what}: {write} written at generation {g}, outside the operation's own changes from {before}"
        );
    }
    assert_eq!(
        s.header.generation,
        before + 2 * changes,
        "{what}: generation after the operation"
    );
    assert_eq!(
        probe::generation(),
        s.header.generation,
        "{what}: generation stored outside bump_generation"
    );
    r
}

/// Asserts the writer side of the sequence lock, step by step: each of the `changes` changes
/// from generation `before` on is exactly `generation = odd`, a release fence, one or more
/// writes of the state, a release fence, `generation = even`. So on a weakly ordered machine
/// the odd generation is visible before any write of the change, and every write before the
/// even generation; nothing is written between two changes.
fn assert_sequence_lock_shape(what: &str, before: u64, changes: u64, steps: &[probe::Step]) {
    use probe::Step::*;
    let mut rest = steps;
    for k in 0..changes {
        let (odd, even) = (before + 2 * k + 1, before + 2 * k + 2);
        let [Generation(g), Fence(f), tail @ ..] = rest else {
            panic!("{what}, change {k}: does not open with generation {odd} and a fence: {rest:?}");
        };
        assert_eq!((*g, *f), (odd, odd), "{what}, change {k}: opening {rest:?}");
        let nwrites = tail
            .iter()
            .take_while(|s| matches!(s, Write(_, g) if *g == odd))
            .count();
        assert!(
            nwrites > 0,
            "{what}, change {k}: no write after the opening fence: {tail:?}"
        );
        let [Fence(f), Generation(g), after @ ..] = &tail[nwrites..] else {
            panic!(
                "{what}, change {k}: writes not closed by a fence and generation {even}: {:?}",
                &tail[nwrites..]
            );
        };
        assert_eq!((*f, *g), (odd, even), "{what}, change {k}: closing");
        rest = after;
    }
    assert!(
        rest.is_empty(),
        "{what}: steps after its {changes} changes: {rest:?}"
    );
}

#[test]
fn a_change_is_odd_generation_fence_writes_fence_even_generation() {
    use probe::Step::*;
    let mut s = Storage::new();
    let g = s.header.generation;
    let (_, steps) = probe::steps_during(|| s.t().track_alloc(pa(0), 1, 1, "a", 0).unwrap());
    assert_eq!(
        steps,
        [
            Generation(g + 1),
            Fence(g + 1),
            Write("slot", g + 1),
            Write("event", g + 1),
            Fence(g + 1),
            Generation(g + 2),
        ]
    );
}

#[test]
fn every_mutating_operation_writes_with_the_generation_odd_and_ends_even() {
    let mut s = Storage::new();
    assert_changes(&mut s, "init", 1, |s| {
        s.t().init(BASE, 32768, BASE, 32768, TIMEBASE_HZ, NONCE)
    });
    assert_changes(&mut s, "track_alloc", 1, |s| {
        s.t().track_alloc(pa(0), 2, 3, "a", 1).unwrap()
    });
    assert_changes(&mut s, "track_alloc", 1, |s| {
        s.t().track_alloc(pa(4), 1, 3, "b", 1).unwrap()
    });
    assert_changes(&mut s, "track_alloc", 1, |s| {
        s.t().track_alloc(pa(8), 1, 4, "c", 1).unwrap()
    });
    assert_changes(&mut s, "track_free", 1, |s| {
        s.t().track_free(pa(8), 1, by(4), false, 2).unwrap()
    });
    for (what, addr, n, by, free) in [
        ("untracked free", pa(60), 1, FreeBy::Kernel, false),
        ("double free", pa(8), 1, by(4), true),
        ("wrong-size free", pa(0), 1, by(3), false),
        ("not-owner free", pa(0), 2, by(5), false),
    ] {
        assert_changes(&mut s, what, 1, |s| {
            s.t().track_free(addr, n, by, free, 3).unwrap_err()
        });
    }
    // The sweep: one change per entry (pid 3 has two).
    assert_changes(&mut s, "free_all_for_pid", 2, |s| {
        s.t().free_all_for_pid(3, 4, |_| {})
    });
    // A refused allocation (table full) is a change too: counter and event.
    for i in 0..MAX_TRACKED_ALLOCS as u64 {
        s.t().track_alloc(pa(100 + i), 1, 6, "fill", 0).unwrap();
    }
    assert_changes(&mut s, "track_alloc (table full)", 1, |s| {
        s.t().track_alloc(pa(1 << 20), 1, 6, "x", 5).unwrap_err()
    });
}

#[test]
fn a_sweep_of_a_pid_with_nothing_is_no_change() {
    let mut s = Storage::new();
    s.t().track_alloc(pa(0), 1, 3, "a", 0).unwrap();
    let g = s.header.generation;
    assert_eq!(
        s.t().free_all_for_pid(4, 0, |_| panic!("not owned")),
        (0, 0)
    );
    assert_eq!(s.header.generation, g);
}

#[test]
fn the_sweep_callback_runs_between_changes_with_the_generation_even() {
    let mut s = Storage::new();
    for i in 0..40u64 {
        s.t()
            .track_alloc(pa(i * 4), 1 + i % 3, 3 + (i % 2) as u32, "mix", 0)
            .unwrap();
    }
    let (start, tracked0, free0) = (
        s.header.generation,
        s.header.tracked_pages,
        s.header.free_pages,
    );
    let mut seen = Vec::new();
    let (allocs, pages) = s.t().free_all_for_pid(3, 9, |e| {
        // The printing and page freeing of the exit report happen here: no reader may be
        // kept waiting by them, so the entry's own change must already be complete.
        let g = probe::generation();
        assert_eq!(g % 2, 0, "callback for {e:?} ran at odd generation {g}");
        seen.push((g, e.npages));
    });
    assert_eq!(allocs, 20);
    assert_eq!(seen.len(), 20);
    // One change per entry, each complete before its callback: 2, 4, 6, … past the start.
    for (k, (g, _)) in seen.iter().enumerate() {
        assert_eq!(*g, start + 2 * (k as u64 + 1), "entry {k}");
    }
    assert_eq!(pages, seen.iter().map(|s| s.1).sum::<u64>());
    assert_eq!(s.header.tracked_pages, tracked0 - pages);
    assert_eq!(s.header.free_pages, free0 + pages);
    assert_eq!(
        (s.header.reclaimed_allocs, s.header.reclaimed_pages),
        (20, pages)
    );
}
