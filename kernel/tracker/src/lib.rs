//! Page-allocation tracker bookkeeping: who owns which physical pages, as the inspector sees it.
//!
//! This crate owns the *logic* over the exported tracker state (docs/tracker-abi.md); the kernel
//! owns the storage (statics at fixed symbols) and the glue (interrupts off, console output,
//! giving pages back to the allocator). It is `no_std` and host-testable.
//!
//! Invariants kept by every operation of [`Tracker`]:
//! - `count` equals the number of used slots below `high_water`; `header.tracked_pages` equals
//!   the sum of their `npages`; no two used slots start at the same `pa`.
//! - `header.free_pages` moves with every tracked allocation, free and sweep, in the same change
//!   (every page the allocator hands out is tracked, so the count given at `init` minus what is
//!   tracked since is what the allocator has free); no re-sync from the allocator is needed.
//! - `header.generation` is odd exactly while an operation is changing the state, so a reader
//!   that stops the CPU at any instruction can tell a torn state from a consistent one.
//! - The stores of a change become visible to a reader on another hart or host thread (guest
//!   RAM read from a shared file while the guest runs) in protocol order: the odd generation
//!   before any store of the change, every store of the change before the even generation
//!   (a release fence, `fence rw,w` on riscv64, on each side of the change).
//! - Each operation is O(1), except [`Tracker::free_all_for_pid`], which scans the slots below
//!   the high-water mark once.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod abi;
mod index;
pub mod lock;

use abi::*;
use core::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};
pub use index::SlotIndex;

/// `track_alloc` found no free slot. `first` is true only for the first refusal since boot, so
/// the kernel can say so on the console once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull {
    pub first: bool,
}

/// Who asks for a free ([`Tracker::track_free`]): what they may free, and whom an
/// `InvalidFree` event names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeBy {
    /// The kernel: any live allocation, whoever owns it.
    Kernel,
    /// Process `pid`, through its heap window: only an allocation it owns and that is `mapped`
    /// there (one of its own user allocations). An allocation it owns but has not mapped there
    /// is one the kernel holds for it (stack, page table, …): refused as `NotOwner`, like
    /// anyone else's.
    Process { pid: Pid, mapped: bool },
}

/// A view over the tracker's storage. The kernel builds one around its statics for the duration
/// of one operation, holding its tracker lock ([`lock::SpinLock`]) with interrupts off: writers
/// are serialized, so one view at a time exists; tests build one around heap storage.
pub struct Tracker<'a> {
    table: &'a mut [AllocEntry; MAX_TRACKED_ALLOCS],
    count: &'a mut usize,
    header: &'a mut TrackerHeader,
    events: &'a mut [AllocEvent; EVENT_RING_LEN],
    index: &'a mut SlotIndex,
}

impl<'a> Tracker<'a> {
    /// Wraps storage that is either all-empty (`EMPTY` constants) or was only ever changed
    /// through a `Tracker`.
    pub fn new(
        table: &'a mut [AllocEntry; MAX_TRACKED_ALLOCS],
        count: &'a mut usize,
        header: &'a mut TrackerHeader,
        events: &'a mut [AllocEvent; EVENT_RING_LEN],
        index: &'a mut SlotIndex,
    ) -> Self {
        Tracker {
            table,
            count,
            header,
            events,
            index,
        }
    }

    /// Stamps the header once at boot: magic, version, capacity, RAM geometry (`alloc_base`:
    /// the first page the allocator manages), `timebase_hz`, the frequency of the `time` CSR
    /// that the `now` arguments of the other operations read, and `boot_nonce`, a value that
    /// differs between boots.
    ///
    /// Panics if `boot_nonce` is 0: readers take 0 for a header not yet initialised.
    pub fn init(
        &mut self,
        ram_base: u64,
        ram_pages: u64,
        alloc_base: u64,
        free_pages: u64,
        timebase_hz: u64,
        boot_nonce: u64,
    ) {
        assert!(
            boot_nonce != 0,
            "Tracker::init: the boot nonce must not be 0"
        );
        self.change(|t| {
            t.observe("init");
            t.header.magic = TRACKER_MAGIC;
            t.header.abi_version = TRACKER_ABI_VERSION;
            t.header.capacity = MAX_TRACKED_ALLOCS as u32;
            t.header.ram_base = ram_base;
            t.header.ram_pages = ram_pages;
            t.header.alloc_base = alloc_base;
            t.header.free_pages = free_pages;
            t.header.timebase_hz = timebase_hz;
            t.header.boot_nonce = boot_nonce;
        });
    }

    /// [`track_alloc_at`](Self::track_alloc_at) with no call site recorded.
    pub fn track_alloc(
        &mut self,
        pa: u64,
        npages: u64,
        owner: Pid,
        tag: &'static str,
        now: u64,
    ) -> Result<usize, TableFull> {
        self.track_alloc_at(pa, npages, owner, tag, AllocSite::NONE, now)
    }

    /// Records that `npages` pages at `pa` now belong to `owner`, asked for at `at` (kept in
    /// the entry and in its `Alloc` event, or in the `AllocFailed` event). Returns the slot used.
    ///
    /// When the table is full nothing is recorded but the refusal (counter and event): the
    /// caller must then give the pages back and fail the allocation, never hand them out.
    ///
    /// Panics if `npages` is 0 or `pa` is already tracked: either means the allocator broke
    /// its own invariant.
    pub fn track_alloc_at(
        &mut self,
        pa: u64,
        npages: u64,
        owner: Pid,
        tag: &'static str,
        at: AllocSite,
        now: u64,
    ) -> Result<usize, TableFull> {
        assert!(npages > 0, "track_alloc: zero-page allocation at {pa:#x}");
        assert!(
            self.index.find(&self.table[..], pa).is_none(),
            "track_alloc: pa {pa:#x} is already tracked (the allocator handed out a live page)"
        );
        self.change(|t| {
            let Some(slot) = t.index.take_slot(&mut t.header.high_water) else {
                t.header.failed_allocs += 1;
                let failed = AllocEntry {
                    owner,
                    npages,
                    tag,
                    site: at.site,
                    user_site: at.user_site,
                    ..AllocEntry::EMPTY
                };
                t.push_event(
                    EventKind::AllocFailed,
                    NO_SLOT,
                    &failed,
                    at.user_program,
                    now,
                );
                return Err(TableFull {
                    first: t.header.failed_allocs == 1,
                });
            };
            t.observe("slot");
            t.table[slot] = AllocEntry {
                used: 1,
                owner,
                pa,
                npages,
                tag,
                time: now,
                site: at.site,
                user_site: at.user_site,
            };
            t.index.insert(&t.table[..], slot);
            *t.count += 1;
            t.header.tracked_pages += npages;
            t.header.free_pages = t.header.free_pages.saturating_sub(npages);
            t.header.total_allocs += 1;
            let entry = t.table[slot];
            t.push_event(EventKind::Alloc, slot as u32, &entry, at.user_program, now);
            Ok(slot)
        })
    }

    /// Forgets the allocation of `npages` pages at `pa` and returns it; the caller then gives
    /// the pages back to the allocator.
    ///
    /// `by` says who asks, which decides what may be freed (see [`FreeBy`]).
    /// `page_already_free` is the allocator's view of the page at `pa`; it tells a double free
    /// from an address that was never tracked. A refused free changes no entry: it is counted
    /// in `invalid_frees` and recorded as an `InvalidFree` event whose tag is the reason and
    /// whose owner is the PID that asked (for the kernel: the entry's owner, else 0).
    pub fn track_free(
        &mut self,
        pa: u64,
        npages: u64,
        by: FreeBy,
        page_already_free: bool,
        now: u64,
    ) -> Result<AllocEntry, FreeError> {
        let found = self.index.find(&self.table[..], pa);
        let verdict = match found {
            None if page_already_free => Err(FreeError::DoubleFree),
            None => Err(FreeError::Untracked),
            Some(slot) => {
                let e = &self.table[slot];
                match by {
                    FreeBy::Process { pid, mapped } if pid != e.owner || !mapped => {
                        Err(FreeError::NotOwner { owner: e.owner })
                    }
                    _ if e.npages != npages => Err(FreeError::WrongSize { tracked: e.npages }),
                    _ => Ok(slot),
                }
            }
        };
        self.change(|t| match verdict {
            Ok(slot) => {
                let entry = t.remove(slot);
                t.header.free_pages += entry.npages;
                t.header.total_frees += 1;
                t.push_event(EventKind::Free, slot as u32, &entry, "", now);
                Ok(entry)
            }
            Err(err) => {
                t.header.invalid_frees += 1;
                let who = match by {
                    FreeBy::Process { pid, .. } => pid,
                    FreeBy::Kernel => found.map_or(0, |s| t.table[s].owner),
                };
                let refused = AllocEntry {
                    owner: who,
                    pa,
                    npages,
                    tag: err.reason(),
                    ..AllocEntry::EMPTY
                };
                t.push_event(EventKind::InvalidFree, NO_SLOT, &refused, "", now);
                Err(err)
            }
        })
    }

    /// Exit sweep: removes every entry owned by `pid`, in slot order, each in its own change,
    /// and calls `on_entry` with each one just after its change is complete (to print it and
    /// give its pages back to the allocator directly, *not* through `track_free`). Returns
    /// (allocations, pages) reclaimed.
    ///
    /// The generation is even whenever `on_entry` runs: however long the caller takes over an
    /// entry (the exit report prints a console line for each), a reader that waits for an even
    /// generation waits at most for one entry's removal, never for the whole sweep.
    ///
    /// Panics if `pid` is 0: kernel allocations are never swept.
    pub fn free_all_for_pid(
        &mut self,
        pid: Pid,
        now: u64,
        on_entry: impl FnMut(&AllocEntry),
    ) -> (u64, u64) {
        self.free_all_for_program(pid, "", now, on_entry)
    }

    /// [`free_all_for_pid`](Self::free_all_for_pid) of a process running `program`: the
    /// `ExitReclaim` events of entries with a `user_site` name it (`user_program`).
    pub fn free_all_for_program(
        &mut self,
        pid: Pid,
        program: &'static str,
        now: u64,
        mut on_entry: impl FnMut(&AllocEntry),
    ) -> (u64, u64) {
        assert!(
            pid != 0,
            "free_all_for_pid: the kernel (pid 0) is never swept"
        );
        let (mut allocs, mut pages) = (0, 0);
        for slot in 0..self.header.high_water as usize {
            let e = self.table[slot];
            if e.used == 0 || e.owner != pid {
                continue;
            }
            self.change(|t| {
                t.remove(slot);
                let program = if e.user_site != 0 { program } else { "" };
                t.push_event(EventKind::ExitReclaim, slot as u32, &e, program, now);
                t.header.reclaimed_allocs += 1;
                t.header.reclaimed_pages += e.npages;
                t.header.free_pages += e.npages;
            });
            on_entry(&e);
            allocs += 1;
            pages += e.npages;
        }
        (allocs, pages)
    }

    /// Live entries with their slot numbers, in slot order.
    pub fn live(&self) -> impl Iterator<Item = (usize, &AllocEntry)> {
        self.table[..self.header.high_water as usize]
            .iter()
            .enumerate()
            .filter(|(_, e)| e.used != 0)
    }

    /// The entry whose allocation starts at `pa`, if it is tracked.
    pub fn find(&self, pa: u64) -> Option<&AllocEntry> {
        self.index
            .find(&self.table[..], pa)
            .map(|slot| &self.table[slot])
    }

    pub fn header(&self) -> &TrackerHeader {
        self.header
    }

    pub fn count(&self) -> usize {
        *self.count
    }

    /// Clears `slot` (which must be used) and returns what it held.
    fn remove(&mut self, slot: usize) -> AllocEntry {
        self.observe("remove");
        let entry = self.table[slot];
        self.index.remove(&self.table[..], entry.pa, slot);
        self.table[slot] = AllocEntry::EMPTY;
        self.index.put_slot(slot);
        *self.count -= 1;
        self.header.tracked_pages -= entry.npages;
        entry
    }

    /// Appends an event about `e` (owner, pa, npages, tag, sites) at `slot` to the ring;
    /// `program` is the `user_program` of its user site.
    fn push_event(
        &mut self,
        kind: EventKind,
        slot: u32,
        e: &AllocEntry,
        program: &'static str,
        time: u64,
    ) {
        self.observe("event");
        let seq = self.header.event_head;
        self.events[(seq % EVENT_RING_LEN as u64) as usize] = AllocEvent {
            seq,
            kind,
            owner: e.owner,
            slot,
            pa: e.pa,
            npages: e.npages,
            tag: e.tag,
            time,
            site: e.site,
            user_site: e.user_site,
            user_program: program,
        };
        self.header.event_head = seq + 1;
    }

    /// Runs `f` as one change under the generation protocol: odd generation while `f` runs.
    ///
    /// Shape, for a reader that samples the state while it changes (sequence lock, writer
    /// side): generation += 1 (odd) → release fence → the change → release fence →
    /// generation += 1 (even). The first fence makes the odd generation visible before any
    /// store of the change; the second makes every store of the change visible before the even
    /// generation. A reader that loads the generation with acquire, copies, and loads it
    /// again after an acquire fence therefore never takes a torn copy for a whole one.
    fn change<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        self.bump_generation();
        self.release_fence();
        let r = f(self);
        self.release_fence();
        self.bump_generation();
        r
    }

    /// Advances `generation` by one with a single atomic store that the compiler may neither
    /// drop, merge with the next bump, nor move across the surrounding state changes. Its order
    /// against the change's stores, as other harts and host threads see it, comes from the
    /// release fences in [`change`](Self::change).
    #[allow(unsafe_code)]
    fn bump_generation(&mut self) {
        compiler_fence(Ordering::SeqCst);
        let g: *mut u64 = &mut self.header.generation;
        // SAFETY: `g` comes from an exclusive reference, so it is valid, and nothing else
        // accesses the field through Rust while the `AtomicU64` view lives (this statement);
        // its alignment is `AtomicU64`'s (checked at compile time below). The store is one
        // aligned 8-byte store (`sd` on riscv64): a reader never sees half of it.
        let atomic = unsafe { AtomicU64::from_ptr(g) };
        atomic.store(
            atomic.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        compiler_fence(Ordering::SeqCst);
        #[cfg(test)]
        tests::probe::generation_stored(self.header.generation);
    }

    /// Orders every store before it ahead of every store after it, as seen from other harts and
    /// host threads (`fence rw,w` on riscv64; on the host a barrier for the compiler and the
    /// CPU alike).
    #[inline(always)]
    fn release_fence(&self) {
        fence(Ordering::Release);
        #[cfg(test)]
        tests::probe::fence(self.header.generation);
    }

    /// Test seam: the host tests record the generation at each write of the tracker state
    /// (`what` names the write). Compiled to nothing outside tests.
    #[inline(always)]
    fn observe(&self, what: &'static str) {
        #[cfg(test)]
        tests::probe::write(what, self.header.generation);
        #[cfg(not(test))]
        let _ = what;
    }
}

/// `bump_generation` views the header's `u64` generation as an `AtomicU64`, which needs the
/// stronger alignment where the two differ.
const _: () = assert!(core::mem::align_of::<u64>() >= core::mem::align_of::<AtomicU64>());

#[cfg(test)]
mod tests;
