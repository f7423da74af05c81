//! Several writers: host threads drive one tracker through its lock (`tracker::lock::SpinLock`),
//! as the kernel's harts do, and the result is checked against a model.
//!
//! Each thread plays one process: it allocates pages in an address range of its own, frees
//! some (its own, through its heap window), makes invalid frees (double frees, untracked
//! addresses, a neighbour's pages), and now and then dies and is swept (`free_all_for_pid`).
//! Every operation runs under the lock and appends itself and its result to a log kept under
//! the same lock, so the log is the order in which the writers were serialized. Replaying the
//! log on a plain model must give every result the tracker gave, and the same final table,
//! counters, events and generation. Meanwhile a reader thread takes the lock over and over and
//! checks that it never sees an odd generation or a count that disagrees with the table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracker::abi::*;
use tracker::lock::SpinLock;
use tracker::{FreeBy, SlotIndex, Tracker};

const THREADS: u32 = 4;
const OPS_PER_THREAD: usize = 4000;
const FREE_AT_INIT: u64 = 1 << 30;
/// Each thread's allocations lie in its own 256 MiB range.
const RANGE: u64 = 0x1000_0000;
const BASE: u64 = 0x8000_0000;

/// One operation as serialized by the lock, with the tracker's answer.
#[derive(Clone, Debug, PartialEq)]
enum Op {
    Alloc {
        pa: u64,
        npages: u64,
        owner: Pid,
        result: Result<usize, ()>,
    },
    Free {
        pa: u64,
        npages: u64,
        pid: Pid,
        already_free: bool,
        result: Result<AllocEntry, FreeError>,
    },
    Sweep {
        pid: Pid,
        result: (u64, u64),
    },
}

struct Storage {
    table: [AllocEntry; MAX_TRACKED_ALLOCS],
    count: usize,
    header: TrackerHeader,
    events: [AllocEvent; EVENT_RING_LEN],
    index: SlotIndex,
    log: Vec<Op>,
}

impl Storage {
    fn tracker(&mut self) -> (Tracker<'_>, &mut Vec<Op>) {
        (
            Tracker::new(
                &mut self.table,
                &mut self.count,
                &mut self.header,
                &mut self.events,
                &mut self.index,
            ),
            &mut self.log,
        )
    }
}

/// xorshift64*: deterministic per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One writer: process `pid` (a new pid after each sweep, as after an exit).
fn writer(lock: &SpinLock<Box<Storage>>, thread: u32) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((thread as u64 + 1) << 32));
    let range = BASE + thread as u64 * RANGE;
    let mut pid = thread + 1;
    let mut next_pa = range;
    let mut live: Vec<(u64, u64)> = Vec::new();
    let mut freed: Vec<u64> = Vec::new();
    for k in 0..OPS_PER_THREAD {
        let roll = rng.below(100);
        let mut g = lock.lock();
        let (mut t, log) = g.tracker();
        let now = k as u64;
        match roll {
            0..=54 => {
                let npages = 1 + rng.below(4);
                let pa = next_pa;
                next_pa += npages * PAGE_SIZE;
                let result = t.track_alloc(pa, npages, pid, "alloc_pages", now);
                if result.is_ok() {
                    live.push((pa, npages));
                }
                log.push(Op::Alloc {
                    pa,
                    npages,
                    owner: pid,
                    result: result.map_err(|_| ()),
                });
            }
            55..=89 if !live.is_empty() => {
                let (pa, npages) = live.swap_remove(rng.below(live.len() as u64) as usize);
                let by = FreeBy::Process { pid, mapped: true };
                let result = t.track_free(pa, npages, by, false, now);
                freed.push(pa);
                log.push(Op::Free {
                    pa,
                    npages,
                    pid,
                    already_free: false,
                    result,
                });
            }
            90..=97 => {
                // Invalid: a double free, or an address never tracked (maybe a neighbour's
                // range, maybe the middle of an allocation).
                let (pa, already_free) = match freed.last() {
                    Some(&pa) if roll.is_multiple_of(2) => (pa, true),
                    _ => (
                        BASE + rng.below(THREADS as u64) * RANGE + rng.below(64) * PAGE_SIZE,
                        false,
                    ),
                };
                let by = FreeBy::Process { pid, mapped: true };
                let result = t.track_free(pa, 1, by, already_free, now);
                log.push(Op::Free {
                    pa,
                    npages: 1,
                    pid,
                    already_free,
                    result,
                });
            }
            _ => {
                let result = t.free_all_for_pid(pid, now, |_| {});
                log.push(Op::Sweep { pid, result });
                freed.extend(live.drain(..).map(|(pa, _)| pa));
                pid += THREADS;
            }
        }
    }
}

/// What the tracker should hold after the log: replays each operation and checks its result.
#[derive(Default)]
struct Model {
    live: HashMap<u64, (Pid, u64)>,
    total_allocs: u64,
    total_frees: u64,
    invalid_frees: u64,
    reclaimed_allocs: u64,
    reclaimed_pages: u64,
    failed_allocs: u64,
    changes: u64,
    tracked_pages: u64,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc {
                pa,
                npages,
                owner,
                ref result,
            } => {
                self.changes += 1;
                if self.live.len() == MAX_TRACKED_ALLOCS {
                    assert!(result.is_err(), "{op:?}: the table was full");
                    self.failed_allocs += 1;
                } else {
                    assert!(result.is_ok(), "{op:?}: the table had room");
                    self.live.insert(pa, (owner, npages));
                    self.total_allocs += 1;
                    self.tracked_pages += npages;
                }
            }
            Op::Free {
                pa,
                npages,
                pid,
                already_free,
                ref result,
            } => {
                self.changes += 1;
                let expect = match self.live.get(&pa) {
                    None if already_free => Err(FreeError::DoubleFree),
                    None => Err(FreeError::Untracked),
                    Some(&(owner, _)) if owner != pid => Err(FreeError::NotOwner { owner }),
                    Some(&(_, n)) if n != npages => Err(FreeError::WrongSize { tracked: n }),
                    Some(_) => Ok(()),
                };
                assert_eq!(
                    result.as_ref().map(|_| ()),
                    expect.as_ref().map(|_| ()),
                    "{op:?}"
                );
                assert_eq!(result.as_ref().err(), expect.err().as_ref(), "{op:?}");
                if let Ok(e) = result {
                    assert_eq!((e.pa, e.npages, e.owner), (pa, npages, pid), "{op:?}");
                    self.live.remove(&pa);
                    self.total_frees += 1;
                    self.tracked_pages -= npages;
                } else {
                    self.invalid_frees += 1;
                }
            }
            Op::Sweep { pid, result } => {
                let mine: Vec<u64> = self
                    .live
                    .iter()
                    .filter(|(_, &(o, _))| o == pid)
                    .map(|(&pa, _)| pa)
                    .collect();
                let pages: u64 = mine.iter().map(|pa| self.live[pa].1).sum();
                assert_eq!(result, (mine.len() as u64, pages), "{op:?}");
                for pa in mine {
                    self.live.remove(&pa);
                }
                self.changes += result.0;
                self.reclaimed_allocs += result.0;
                self.reclaimed_pages += pages;
                self.tracked_pages -= pages;
            }
        }
    }
}

#[test]
fn several_writers_under_the_lock_agree_with_a_model() {
    let storage = Box::new(Storage {
        table: [AllocEntry::EMPTY; MAX_TRACKED_ALLOCS],
        count: 0,
        header: TrackerHeader::EMPTY,
        events: [AllocEvent::EMPTY; EVENT_RING_LEN],
        index: SlotIndex::EMPTY,
        log: Vec::new(),
    });
    let lock = Arc::new(SpinLock::new(storage));
    lock.lock()
        .tracker()
        .0
        .init(BASE, 1 << 20, BASE, FREE_AT_INIT, 10_000_000, 7);

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (lock, done) = (Arc::clone(&lock), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut looks = 0u64;
            while !done.load(Ordering::Relaxed) {
                let g = lock.lock();
                assert_eq!(g.header.generation % 2, 0, "a writer left a change open");
                let used = g.table[..g.header.high_water as usize]
                    .iter()
                    .filter(|e| e.used != 0)
                    .count();
                assert_eq!(used, g.count, "alloc_table_count disagrees with the table");
                looks += 1;
            }
            looks
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|i| {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || writer(&lock, i))
        })
        .collect();
    for w in writers {
        w.join().expect("a writer panicked");
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("the reader panicked") > 0);

    let g = lock.lock();
    assert_eq!(g.log.len(), THREADS as usize * OPS_PER_THREAD);
    let mut model = Model::default();
    for op in &g.log {
        model.apply(op);
    }
    let h = &g.header;
    assert_eq!(
        h.generation,
        2 * (1 + model.changes),
        "one even pair per change"
    );
    assert_eq!(h.event_head, model.changes, "one event per change");
    assert_eq!(g.count, model.live.len());
    assert_eq!(h.tracked_pages, model.tracked_pages);
    assert_eq!(h.free_pages, FREE_AT_INIT - model.tracked_pages);
    assert_eq!(
        (h.total_allocs, h.total_frees, h.invalid_frees),
        (model.total_allocs, model.total_frees, model.invalid_frees)
    );
    assert_eq!(
        (h.reclaimed_allocs, h.reclaimed_pages, h.failed_allocs),
        (
            model.reclaimed_allocs,
            model.reclaimed_pages,
            model.failed_allocs
        )
    );
    let table: HashMap<u64, (Pid, u64)> = g.table[..h.high_water as usize]
        .iter()
        .filter(|e| e.used != 0)
        .map(|e| (e.pa, (e.owner, e.npages)))
        .collect();
    assert_eq!(table, model.live, "the final table differs from the model");
    // The ring holds the last events in sequence order.
    for seq in h.event_head.saturating_sub(EVENT_RING_LEN as u64)..h.event_head {
        assert_eq!(g.events[(seq % EVENT_RING_LEN as u64) as usize].seq, seq);
    }
    let stats = lock.stats();
    assert!(stats.acquired > g.log.len() as u64);
}
