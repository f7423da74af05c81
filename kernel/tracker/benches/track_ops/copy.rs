//! A copy of the tracker's alloc/free path (`Tracker::track_alloc_at`, `track_free` with
//! `FreeBy::Kernel`, `change`, `push_event`, `remove` and `SlotIndex`), generic over the
//! record layout, so that the bench can time the same code with the records as they are and
//! as they were before sites were recorded: what a site costs is the record size (an entry of
//! 64 bytes instead of 48, an event of 96 instead of 64) and the stores that fill it.
//!
//! Contract: keep in step with `src/lib.rs` and `src/index.rs`; the bench prints the real
//! tracker beside this copy with the same records, so a copy that drifted shows.

use std::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};
use tracker::abi::*;

/// A record layout: an entry type and its event type.
pub trait Entry: Copy {
    type Event: Copy;
    const EMPTY: Self;
    const EMPTY_EVENT: Self::Event;
    fn new(owner: Pid, pa: u64, npages: u64, tag: &'static str, at: AllocSite, time: u64) -> Self;
    fn pa(&self) -> u64;
    fn npages(&self) -> u64;
    fn event(
        &self,
        seq: u64,
        kind: EventKind,
        slot: u32,
        program: &'static str,
        time: u64,
    ) -> Self::Event;
}

/// The records today: `AllocEntry` (64 bytes) and `AllocEvent` (96 bytes).
impl Entry for AllocEntry {
    type Event = AllocEvent;
    const EMPTY: Self = AllocEntry::EMPTY;
    const EMPTY_EVENT: AllocEvent = AllocEvent::EMPTY;
    #[inline(always)]
    fn new(owner: Pid, pa: u64, npages: u64, tag: &'static str, at: AllocSite, time: u64) -> Self {
        AllocEntry {
            used: 1,
            owner,
            pa,
            npages,
            tag,
            time,
            site: at.site,
            user_site: at.user_site,
        }
    }
    #[inline(always)]
    fn pa(&self) -> u64 {
        self.pa
    }
    #[inline(always)]
    fn npages(&self) -> u64 {
        self.npages
    }
    #[inline(always)]
    fn event(
        &self,
        seq: u64,
        kind: EventKind,
        slot: u32,
        program: &'static str,
        time: u64,
    ) -> AllocEvent {
        AllocEvent {
            seq,
            kind,
            owner: self.owner,
            slot,
            pa: self.pa,
            npages: self.npages,
            tag: self.tag,
            time,
            site: self.site,
            user_site: self.user_site,
            user_program: program,
        }
    }
}

/// The entry before sites were recorded (48 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PreSiteEntry {
    used: u32,
    owner: Pid,
    pa: u64,
    npages: u64,
    tag: &'static str,
    time: u64,
}

/// The event record before sites were recorded (64 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)] // written for the cost of writing it, never read
pub struct PreSiteEvent {
    seq: u64,
    kind: EventKind,
    owner: Pid,
    slot: u32,
    pa: u64,
    npages: u64,
    tag: &'static str,
    time: u64,
}

const _: () = assert!(std::mem::size_of::<PreSiteEntry>() == 48);
const _: () = assert!(std::mem::size_of::<PreSiteEvent>() == 64);
const _: () = assert!(std::mem::size_of::<AllocEntry>() == 64);
const _: () = assert!(std::mem::size_of::<AllocEvent>() == 96);

impl Entry for PreSiteEntry {
    type Event = PreSiteEvent;
    const EMPTY: Self = PreSiteEntry {
        used: 0,
        owner: 0,
        pa: 0,
        npages: 0,
        tag: "",
        time: 0,
    };
    const EMPTY_EVENT: PreSiteEvent = PreSiteEvent {
        seq: 0,
        kind: EventKind::None,
        owner: 0,
        slot: NO_SLOT,
        pa: 0,
        npages: 0,
        tag: "",
        time: 0,
    };
    /// `at` is dropped: before sites, nothing read or passed it.
    #[inline(always)]
    fn new(owner: Pid, pa: u64, npages: u64, tag: &'static str, _: AllocSite, time: u64) -> Self {
        PreSiteEntry {
            used: 1,
            owner,
            pa,
            npages,
            tag,
            time,
        }
    }
    #[inline(always)]
    fn pa(&self) -> u64 {
        self.pa
    }
    #[inline(always)]
    fn npages(&self) -> u64 {
        self.npages
    }
    #[inline(always)]
    fn event(
        &self,
        seq: u64,
        kind: EventKind,
        slot: u32,
        _: &'static str,
        time: u64,
    ) -> PreSiteEvent {
        PreSiteEvent {
            seq,
            kind,
            owner: self.owner,
            slot,
            pa: self.pa,
            npages: self.npages,
            tag: self.tag,
            time,
        }
    }
}

/// `[v; N]` on the heap (the tables are too large for the stack).
fn array<T: Copy, const N: usize>(v: T) -> Box<[T; N]> {
    match vec![v; N].into_boxed_slice().try_into() {
        Ok(a) => a,
        Err(_) => unreachable!("the vector has N elements"),
    }
}

const HASH_LEN: usize = 2 * MAX_TRACKED_ALLOCS;
const HASH_MASK: usize = HASH_LEN - 1;

/// The tracker's state over records `E`: table, event ring, header counters, slot index.
pub struct CopyTracker<E: Entry> {
    table: Box<[E; MAX_TRACKED_ALLOCS]>,
    events: Box<[E::Event; EVENT_RING_LEN]>,
    count: usize,
    generation: AtomicU64,
    high_water: u64,
    tracked_pages: u64,
    free_pages: u64,
    total_allocs: u64,
    total_frees: u64,
    event_head: u64,
    free_stack: Box<[u16]>,
    free_top: usize,
    hash: Box<[u16]>,
}

impl<E: Entry> CopyTracker<E> {
    pub fn new() -> Self {
        CopyTracker {
            table: array(E::EMPTY),
            events: array(E::EMPTY_EVENT),
            count: 0,
            generation: AtomicU64::new(0),
            high_water: 0,
            tracked_pages: 0,
            free_pages: 1 << 20,
            total_allocs: 0,
            total_frees: 0,
            event_head: 0,
            free_stack: vec![0; MAX_TRACKED_ALLOCS].into(),
            free_top: 0,
            hash: vec![0; HASH_LEN].into(),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    // Not inlined into the bench's loop, as the tracker's own functions (another crate) are not.
    #[inline(never)]
    pub fn track_alloc_at(
        &mut self,
        pa: u64,
        npages: u64,
        owner: Pid,
        tag: &'static str,
        at: AllocSite,
        now: u64,
    ) -> Option<usize> {
        assert!(npages > 0);
        assert!(self.find(pa).is_none());
        self.change(|t| {
            let slot = t.take_slot()?;
            t.table[slot] = E::new(owner, pa, npages, tag, at, now);
            t.insert(slot);
            t.count += 1;
            t.tracked_pages += npages;
            t.free_pages = t.free_pages.saturating_sub(npages);
            t.total_allocs += 1;
            let entry = t.table[slot];
            t.push_event(EventKind::Alloc, slot as u32, &entry, at.user_program, now);
            Some(slot)
        })
    }

    /// `track_free` with `FreeBy::Kernel` (the bench's frees are all valid).
    #[inline(never)]
    pub fn track_free(&mut self, pa: u64, npages: u64, now: u64) -> Option<E> {
        let slot = self.find(pa)?;
        if self.table[slot].npages() != npages {
            return None;
        }
        self.change(|t| {
            let entry = t.table[slot];
            t.remove_index(entry.pa(), slot);
            t.table[slot] = E::EMPTY;
            t.free_stack[t.free_top] = slot as u16;
            t.free_top += 1;
            t.count -= 1;
            t.tracked_pages -= entry.npages();
            t.free_pages += entry.npages();
            t.total_frees += 1;
            t.push_event(EventKind::Free, slot as u32, &entry, "", now);
            Some(entry)
        })
    }

    fn push_event(&mut self, kind: EventKind, slot: u32, e: &E, program: &'static str, time: u64) {
        let seq = self.event_head;
        self.events[(seq % EVENT_RING_LEN as u64) as usize] =
            e.event(seq, kind, slot, program, time);
        self.event_head = seq + 1;
    }

    fn change<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.bump_generation();
        fence(Ordering::Release);
        let r = f(self);
        fence(Ordering::Release);
        self.bump_generation();
        r
    }

    fn bump_generation(&mut self) {
        compiler_fence(Ordering::SeqCst);
        let g = &self.generation;
        g.store(g.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
    }

    fn take_slot(&mut self) -> Option<usize> {
        if self.free_top > 0 {
            self.free_top -= 1;
            return Some(self.free_stack[self.free_top] as usize);
        }
        let next = self.high_water as usize;
        (next < MAX_TRACKED_ALLOCS).then(|| {
            self.high_water += 1;
            next
        })
    }

    fn bucket(pa: u64) -> usize {
        let page = pa >> PAGE_SHIFT;
        (page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & HASH_MASK
    }

    fn find(&self, pa: u64) -> Option<usize> {
        let mut b = Self::bucket(pa);
        loop {
            match self.hash[b] {
                0 => return None,
                v if self.table[v as usize - 1].pa() == pa => return Some(v as usize - 1),
                _ => {}
            }
            b = (b + 1) & HASH_MASK;
        }
    }

    fn insert(&mut self, slot: usize) {
        let mut b = Self::bucket(self.table[slot].pa());
        while self.hash[b] != 0 {
            b = (b + 1) & HASH_MASK;
        }
        self.hash[b] = slot as u16 + 1;
    }

    fn remove_index(&mut self, pa: u64, slot: usize) {
        let mut hole = Self::bucket(pa);
        while self.hash[hole] as usize != slot + 1 {
            hole = (hole + 1) & HASH_MASK;
        }
        let mut b = hole;
        loop {
            b = (b + 1) & HASH_MASK;
            let v = self.hash[b];
            if v == 0 {
                break;
            }
            let home = Self::bucket(self.table[v as usize - 1].pa());
            if (b.wrapping_sub(home) & HASH_MASK) >= (b.wrapping_sub(hole) & HASH_MASK) {
                self.hash[hole] = v;
                hole = b;
            }
        }
        self.hash[hole] = 0;
    }
}
