//! Tracker glue: the exported tracker statics (see docs/tracker-abi.md) and the functions a
//! debugger breaks on (`track_alloc`, `track_free`, `dump_allocs`, `dump_allocs_for_pid`,
//! `free_all_tracked_for_pid`). The bookkeeping itself lives in the `tracker` crate.
//!
//! Invariants: every change goes through one `tracker::Tracker` view built under
//! `TRACKER_LOCK` with interrupts off (`with_tracker`): writers on several harts are serialized,
//! one change at a time, so the header's generation protocol holds as with one writer; every page the allocator hands
//! out is tracked (`mm`), so `alloc_tracker.free_pages`, which the tracker moves in the same
//! change as each allocation, free and sweep, stays equal to the allocator's count without any
//! re-sync.

use super::with_pages;
use crate::sync::{SpinLock, TrackerCell};
use crate::{println, timer};
use tracker::abi::*;
use tracker::{FreeBy, SlotIndex, TableFull, Tracker};

/// The inspector reads this: one slot per live allocation (`used == 1`).
#[no_mangle]
#[used]
pub static alloc_table: TrackerCell<[AllocEntry; MAX_TRACKED_ALLOCS]> =
    TrackerCell::new([AllocEntry::EMPTY; MAX_TRACKED_ALLOCS]);

/// The inspector reads this: number of used slots in `alloc_table`.
#[no_mangle]
#[used]
pub static alloc_table_count: TrackerCell<usize> = TrackerCell::new(0);

/// The inspector reads this first: generation, high-water mark, counters, RAM geometry.
#[no_mangle]
#[used]
pub static alloc_tracker: TrackerCell<TrackerHeader> = TrackerCell::new(TrackerHeader::EMPTY);

/// The inspector reads this: ring of the most recent tracker events.
#[no_mangle]
#[used]
pub static alloc_events: TrackerCell<[AllocEvent; EVENT_RING_LEN]> =
    TrackerCell::new([AllocEvent::EMPTY; EVENT_RING_LEN]);

/// Free-slot stack and pa → slot index (kernel-private).
static SLOT_INDEX: TrackerCell<SlotIndex> = TrackerCell::new(SlotIndex::EMPTY);

/// Guards the five statics above: held (interrupts off) for each tracker operation, so writers
/// on different harts never overlap. Readers that halt the guest or read its RAM do not take it:
/// they rely on the generation, which only the holder changes.
static TRACKER_LOCK: SpinLock<()> = SpinLock::new("tracker", ());

/// Runs `f` on a tracker view over the statics, holding `TRACKER_LOCK` (interrupts off). Not
/// reentrant: `f` must not call back into this module; it may take `mm::PAGES` (lock order). Never inlined, so a breakpoint on an exported function
/// stops in that function's own frame (its arguments in view), not in inlined tracker code.
#[inline(never)]
fn with_tracker<R>(f: impl FnOnce(&mut Tracker) -> R) -> R {
    let _lock = TRACKER_LOCK.lock();
    // SAFETY: TRACKER_LOCK is held (sync invariant) and `f` does not nest (contract above):
    // these are the only live references to the five statics.
    let mut t = unsafe {
        Tracker::new(
            &mut *alloc_table.get(),
            &mut *alloc_table_count.get(),
            &mut *alloc_tracker.get(),
            &mut *alloc_events.get(),
            &mut *SLOT_INDEX.get(),
        )
    };
    f(&mut t)
}

/// Stamps the header at boot: RAM geometry, the allocator's free count, `timebase_hz`, the
/// `time` CSR frequency from the device tree (the unit of every event and entry `time`), and
/// `boot_nonce` (differs between boots, never 0).
pub fn init(
    ram_base: u64,
    ram_pages: u64,
    alloc_base: u64,
    free_pages: u64,
    timebase_hz: u64,
    boot_nonce: u64,
) {
    with_tracker(|t| {
        t.init(
            ram_base,
            ram_pages,
            alloc_base,
            free_pages,
            timebase_hz,
            boot_nonce,
        )
    });
}

/// A copy of the header.
pub fn header() -> TrackerHeader {
    with_tracker(|t| *t.header())
}

/// Calls `f` for every live entry (under the tracker lock for the whole walk; `f` must not
/// allocate).
pub fn for_each_live(mut f: impl FnMut(&AllocEntry)) {
    with_tracker(|t| t.live().for_each(|(_, e)| f(e)));
}

/// Records `npages` pages at `pa` as owned by `owner` for `tag`, asked for at `site`. Fails
/// when the table is full: the caller must then give the pages back, never hand them out
/// untracked.
#[no_mangle]
#[inline(never)]
pub fn track_alloc(
    pa: u64,
    npages: u64,
    owner: Pid,
    tag: &'static str,
    site: AllocSite,
) -> Result<usize, TableFull> {
    let r = with_tracker(|t| t.track_alloc_at(pa, npages, owner, tag, site, timer::now()));
    if let Err(TableFull { first: true }) = r {
        println!(
            "[tracker] alloc_table full ({MAX_TRACKED_ALLOCS} entries): refusing allocation of {npages} page(s) for pid {owner} tag={tag} (reported once)"
        );
    }
    r
}

/// Forgets the allocation of `npages` pages at `pa` (the caller then gives the pages back).
/// `by` says who asks (`FreeBy::Process` for a free requested by a process). A refused free
/// (untracked address, double free, wrong size, not the owner) changes nothing but the
/// tracker's counter and event ring (the event names the PID that asked), and is reported on
/// the console.
#[no_mangle]
#[inline(never)]
pub fn track_free(pa: u64, npages: u64, by: FreeBy) -> Result<AllocEntry, FreeError> {
    let r = with_tracker(|t| -> Result<AllocEntry, FreeError> {
        // Asked under the tracker lock: no other hart frees or allocates the page meanwhile.
        let already_free = with_pages(|a| a.is_free(pa));
        t.track_free(pa, npages, by, already_free, timer::now())
    });
    if let Err(e) = r {
        let pid_name;
        let who: &dyn core::fmt::Display = match (by, e) {
            (FreeBy::Kernel, _) => &"the kernel",
            (FreeBy::Process { pid, .. }, FreeError::NotOwner { owner }) if owner == pid => {
                pid_name = PidName(pid, " (one of its kernel-side pages)");
                &pid_name
            }
            (FreeBy::Process { pid, .. }, _) => {
                pid_name = PidName(pid, "");
                &pid_name
            }
        };
        match e {
            FreeError::WrongSize { tracked } => println!(
                "[tracker] invalid free by {who}: pa={pa:#x} npages={npages}: wrong_size (tracked npages={tracked})"
            ),
            FreeError::NotOwner { owner } => println!(
                "[tracker] invalid free by {who}: pa={pa:#x} npages={npages}: not_owner (owner={owner})"
            ),
            _ => println!("[tracker] invalid free by {who}: pa={pa:#x} npages={npages}: {}", e.reason()),
        }
    }
    r
}

/// Prints every live allocation, one line each.
#[no_mangle]
#[inline(never)]
pub fn dump_allocs() {
    println!("== OUTSTANDING ALLOCS ==");
    for_each_live(|e| {
        println!(
            "PA={:#x} npages={} owner={} tag={}",
            e.pa, e.npages, e.owner, e.tag
        )
    });
}

/// With `debug` (the exit-report flag, `proc::exit_report_on`), lists the allocations still
/// owned by `pid` between header and footer lines; prints nothing otherwise.
#[no_mangle]
#[inline(never)]
pub fn dump_allocs_for_pid(pid: Pid, debug: bool) {
    if !debug {
        return;
    }
    println!("==== ALLOCS for pid={pid} ====");
    for_each_live(|e| {
        if e.owner == pid {
            println!(" leak: pa={:#x} npages={} tag={}", e.pa, e.npages, e.tag);
        }
    });
    println!("==== END of list - ALLOCS for pid={pid} ====");
}

/// Exit sweep: removes every entry owned by `pid` and gives its pages straight back to the page
/// allocator (not through `track_free`, so nothing is counted twice). Returns (allocations,
/// pages) reclaimed. With `debug` (the exit-report flag) it prints the chapter's report lines.
/// Each entry is removed in its own tracker change; its line is printed and its pages freed
/// after that change, with the generation even, so a reader never waits on the console.
/// Panics for pid 0: kernel allocations are never swept.
#[no_mangle]
#[inline(never)]
pub fn free_all_tracked_for_pid(pid: Pid, debug: bool) -> (u64, u64) {
    assert!(pid != 0, "free_all_tracked_for_pid: pid 0 is the kernel");
    if debug {
        println!("[free_all_tracked] Force freeing leftover allocations for pid={pid}");
    }
    let program = crate::proc::program_of(pid);
    let r = with_tracker(|t| {
        t.free_all_for_program(pid, program, timer::now(), |e| {
            if debug {
                println!(
                    " freeing leak: pa={:#x} npages={} tag={} = destroyed",
                    e.pa, e.npages, e.tag
                );
            }
            with_pages(|a| a.free(e.pa, e.npages));
        })
    });
    r
}

/// Formats as `pid N` followed by a remark.
struct PidName(Pid, &'static str);

impl core::fmt::Display for PidName {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "pid {}{}", self.0, self.1)
    }
}

/// The cost counters of the tracker's lock (`SYS_LOCKSTAT`).
pub fn lock_report() -> crate::sysabi::LockStat {
    TRACKER_LOCK.report()
}
