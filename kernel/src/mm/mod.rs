//! Physical memory: the page allocator paired with the tracker, and virtual memory.
//!
//! Invariant: every page handed out by `alloc_pages` has exactly one tracker entry, and a page
//! goes back to the allocator only after its entry is gone (`free_pages`, or the exit sweep in
//! `tracker::free_all_tracked_for_pid`). A full tracker table fails the allocation: no page is
//! ever handed out untracked.
//!
//! Several harts allocate and free at once: the bitmap is guarded by `PAGES`, the tracker by
//! `tracker::TRACKER_LOCK` (taken before `PAGES` when both are held: the exit sweep).

pub mod tracker;
pub mod vm;

use crate::devicetree::BootInfo;
use crate::sync::{IrqGuard, SpinLock};
use ::tracker::abi::{AllocEntry, AllocSite, FreeError, Pid, PAGE_SIZE};
use ::tracker::FreeBy;
use kcore::page_alloc::PageAllocator;

/// The page bitmap, shared by all harts.
static PAGES: SpinLock<PageAllocator> = SpinLock::new("pages", PageAllocator::EMPTY);

/// Runs `f` on the page allocator, holding its lock. Not reentrant: `f` must not allocate.
pub(crate) fn with_pages<R>(f: impl FnOnce(&mut PageAllocator) -> R) -> R {
    f(&mut PAGES.lock())
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Not enough contiguous free pages.
    OutOfMemory,
    /// The tracker table is full; the pages were given back.
    TableFull,
}

extern "C" {
    static __kernel_end: u8;
}

/// Sets up the page allocator over RAM above the kernel image, stamps the tracker header (RAM
/// geometry, the device tree's timer frequency and this boot's `boot_nonce`, never 0), and
/// turns on paging with the kernel's identity map.
pub fn init(boot: &BootInfo, boot_nonce: u64) {
    // Only the address of the linker symbol is taken.
    let kernel_end = core::ptr::addr_of!(__kernel_end) as u64;
    with_pages(|a| a.init(boot.ram_base, boot.ram_size, kernel_end));
    let (total, free) = with_pages(|a| (a.total_pages(), a.free_pages()));
    let alloc_base = with_pages(|a| a.first_managed());
    tracker::init(
        boot.ram_base,
        total,
        alloc_base,
        free,
        boot.timebase_hz,
        boot_nonce,
    );
    vm::init_kernel(boot);
}

/// Allocates `npages` contiguous zeroed pages for `owner` (0 = kernel), recorded with `tag`
/// and with this call's return address as its site (docs/tracker-abi.md, `site`).
///
/// Never inlined, so that its return address is a real call site in the caller.
#[inline(never)]
pub fn alloc_pages(npages: u64, owner: Pid, tag: &'static str) -> Result<u64, AllocError> {
    let site = AllocSite {
        site: return_address(),
        ..AllocSite::NONE
    };
    alloc_tracked(npages, owner, tag, site)
}

/// [`alloc_pages`] for a program's request: `user_pc` is the address of its `ecall`, `program`
/// its name in the program archive (both kept with the entry as its user site).
#[inline(never)]
pub fn alloc_pages_for_user(
    npages: u64,
    owner: Pid,
    tag: &'static str,
    user_pc: u64,
    program: &'static str,
) -> Result<u64, AllocError> {
    let site = AllocSite {
        site: return_address(),
        user_site: user_pc,
        user_program: program,
    };
    alloc_tracked(npages, owner, tag, site)
}

/// The return address of the function this is inlined into: the caller's resume address.
///
/// Contract: call it first thing in an `#[inline(never)]` function, before any call (a call
/// overwrites `ra`). Costs one register move: no stack walk.
#[inline(always)]
fn return_address() -> u64 {
    #[cfg(target_arch = "riscv64")]
    {
        let ra: u64;
        // SAFETY: reads a register into a fresh output; no memory or other register is touched.
        unsafe {
            core::arch::asm!("mv {0}, ra", out(reg) ra, options(nomem, nostack, preserves_flags))
        };
        ra
    }
    #[cfg(not(target_arch = "riscv64"))]
    0
}

fn alloc_tracked(
    npages: u64,
    owner: Pid,
    tag: &'static str,
    site: AllocSite,
) -> Result<u64, AllocError> {
    let _irq = IrqGuard::new();
    let pa = with_pages(|a| a.alloc(npages as usize)).ok_or(AllocError::OutOfMemory)?;
    if tracker::track_alloc(pa, npages, owner, tag, site).is_err() {
        with_pages(|a| a.free(pa, npages));
        return Err(AllocError::TableFull);
    }
    // SAFETY: the pages were just taken from the allocator: nobody else refers to them; RAM is identity-mapped.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, (npages * PAGE_SIZE) as usize) };
    Ok(pa)
}

/// Frees the allocation of `npages` pages at `pa`. A free that does not match a live
/// allocation exactly is refused, counted and reported, and changes nothing.
pub fn free_pages(pa: u64, npages: u64) -> Result<(), FreeError> {
    untrack(pa, npages, FreeBy::Kernel)?;
    release(pa, npages);
    Ok(())
}

/// Frees the one-page allocation at `pa`.
pub fn free_page(pa: u64) -> Result<(), FreeError> {
    free_pages(pa, 1)
}

/// First half of a free: removes the tracker entry (checking that `by` may free it).
/// On success the caller must `release` the pages once nothing refers to them any more.
pub fn untrack(pa: u64, npages: u64, by: FreeBy) -> Result<AllocEntry, FreeError> {
    tracker::track_free(pa, npages, by)
}

/// Second half of a free: gives untracked pages back to the allocator.
pub fn release(pa: u64, npages: u64) {
    with_pages(|a| a.free(pa, npages));
}

/// (total, free) pages of RAM.
pub fn page_counts() -> (u64, u64) {
    with_pages(|a| (a.total_pages(), a.free_pages()))
}

/// The cost counters of the page bitmap's lock (`SYS_LOCKSTAT`).
pub fn lock_report() -> crate::sysabi::LockStat {
    PAGES.report()
}
