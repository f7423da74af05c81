//! Benchmark: `track_alloc` + `track_free` at 10 %, 50 % and 90 % table fill, our O(1) tracker
//! (recording each allocation's call site, as the kernel does) beside a faithful copy of the
//! chapter's linear-scan version. Prints ns per alloc+free pair (the fastest of a few paired
//! rounds) and the ratio, then what
//! recording the site costs per allocation: the same run with and without a site, paired
//! within rounds, the smallest of each kept. Run with `make bench` (or `cargo bench -p
//! tracker`).
//!
//! Both versions run the same operation sequence: fill the table to the given share, then
//! repeatedly allocate a new address and free a randomly chosen live one, so the fill stays put.

use std::hint::black_box;
use std::time::Instant;
use tracker::abi::*;
use tracker::{FreeBy, SlotIndex, Tracker};

/// The chapter's `alloc_track_t` and its two functions, transcribed faithfully.
#[derive(Clone, Copy)]
#[allow(dead_code)] // owner and tag are written but never read, as in the chapter
struct ChapterEntry {
    used: i32,
    pa: u64,
    npages: usize,
    owner: i32,
    tag: &'static str,
}

struct ChapterTracker {
    alloc_table: Vec<ChapterEntry>,
    alloc_table_count: usize,
}

impl ChapterTracker {
    fn track_alloc(&mut self, pa: u64, npages: usize, owner: i32, tag: &'static str) {
        for i in 0..MAX_TRACKED_ALLOCS {
            if self.alloc_table[i].used == 0 {
                self.alloc_table[i] = ChapterEntry {
                    used: 1,
                    pa,
                    npages,
                    owner,
                    tag,
                };
                self.alloc_table_count += 1;
                return;
            }
        }
    }

    fn track_free(&mut self, pa: u64, npages: usize) {
        for i in 0..MAX_TRACKED_ALLOCS {
            let e = &mut self.alloc_table[i];
            if e.used != 0 && e.pa == pa && e.npages == npages {
                e.used = 0;
                self.alloc_table_count -= 1;
                return;
            }
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The shared operation script: initial fill, then (alloc new, free live[victim]) pairs.
struct Script {
    fill: Vec<u64>,
    steps: Vec<(u64, usize)>,
}

fn script(fill_share: f64, pairs: usize) -> Script {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = (MAX_TRACKED_ALLOCS as f64 * fill_share) as usize;
    let mut next_pa = 0x8020_0000u64;
    let mut take = || {
        next_pa += 2 * PAGE_SIZE;
        next_pa
    };
    let fill = (0..n).map(|_| take()).collect();
    let steps = (0..pairs)
        .map(|_| (take(), rng.next() as usize % n))
        .collect();
    Script { fill, steps }
}

fn run_chapter(s: &Script) -> f64 {
    let mut t = ChapterTracker {
        alloc_table: vec![
            ChapterEntry {
                used: 0,
                pa: 0,
                npages: 0,
                owner: 0,
                tag: ""
            };
            MAX_TRACKED_ALLOCS
        ],
        alloc_table_count: 0,
    };
    let mut live = s.fill.clone();
    for &pa in &live {
        t.track_alloc(pa, 1, 1, "fill");
    }
    let start = Instant::now();
    for &(pa, victim) in &s.steps {
        t.track_alloc(black_box(pa), 1, 1, "bench");
        let old = std::mem::replace(&mut live[victim], pa);
        t.track_free(black_box(old), 1);
    }
    black_box(t.alloc_table_count);
    start.elapsed().as_nanos() as f64 / s.steps.len() as f64
}

/// What the kernel records for a program's request (the values do not matter to the cost).
const SITE: AllocSite = AllocSite {
    site: 0x8020_4242,
    user_site: 0x4000_010e,
    user_program: "leak",
};

fn run_ours(s: &Script, site: AllocSite) -> f64 {
    let mut table: Box<[AllocEntry; MAX_TRACKED_ALLOCS]> =
        vec![AllocEntry::EMPTY; MAX_TRACKED_ALLOCS]
            .try_into()
            .unwrap();
    let mut events: Box<[AllocEvent; EVENT_RING_LEN]> =
        vec![AllocEvent::EMPTY; EVENT_RING_LEN].try_into().unwrap();
    let mut index = Box::new(SlotIndex::EMPTY);
    let (mut count, mut header) = (0usize, TrackerHeader::EMPTY);
    let mut t = Tracker::new(&mut table, &mut count, &mut header, &mut events, &mut index);
    t.init(0x8000_0000, 1 << 20, 0x8000_0000, 1 << 20, 10_000_000, 1);
    let mut live = s.fill.clone();
    for &pa in &live {
        t.track_alloc(pa, 1, 1, "fill", 0).unwrap();
    }
    let start = Instant::now();
    for &(pa, victim) in &s.steps {
        t.track_alloc_at(black_box(pa), 1, 1, "bench", black_box(site), 0)
            .unwrap();
        let old = std::mem::replace(&mut live[victim], pa);
        t.track_free(black_box(old), 1, FreeBy::Kernel, false, 0)
            .unwrap();
    }
    black_box(t.count());
    start.elapsed().as_nanos() as f64 / s.steps.len() as f64
}

/// Paired rounds per measurement; each result is the fastest round.
const ROUNDS: usize = 5;

fn main() {
    println!("track_alloc + track_free, ns per pair ({MAX_TRACKED_ALLOCS} slots)");
    println!(
        "{:>6} {:>12} {:>12} {:>8}",
        "fill", "chapter scan", "leakscope", "ratio"
    );
    for share in [0.10, 0.50, 0.90] {
        let s = script(share, 20_000);
        // The fastest of a few paired rounds of each: the machine is shared, and a round slowed
        // by a neighbour says nothing about either tracker.
        let (mut chapter, mut ours) = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            chapter = chapter.min(run_chapter(&s));
            ours = ours.min(run_ours(&s, SITE));
        }
        println!(
            "{:>5.0}% {:>12.1} {:>12.1} {:>7.1}x",
            share * 100.0,
            chapter,
            ours,
            chapter / ours
        );
    }
    // The site's own cost: its three words stored in the entry and in the event record (the
    // kernel adds one register move to read its return address).
    let s = script(0.90, 20_000);
    let (mut with, mut without) = (f64::MAX, f64::MAX);
    for _ in 0..3 * ROUNDS {
        with = with.min(run_ours(&s, SITE));
        without = without.min(run_ours(&s, AllocSite::NONE));
    }
    println!(
        "recording a call site at 90% fill: {with:.1} ns per pair with, {without:.1} without: \
         {:+.1} ns per allocation",
        with - without
    );
}
