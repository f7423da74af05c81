//! The physical page allocator: a bitmap over RAM, one bit per 4 KiB page (1 = free).
//!
//! Invariants: `free` equals the number of set bits; pages below the first managed page
//! (firmware, kernel image) are never free; only this module flips bits. It knows nothing about
//! owners: the kernel's `mm` pairs every handout with a tracker entry. Requests are checked with
//! overflow-free arithmetic, so any `npages` a caller passes is answered, never wrapped.

use tracker::abi::PAGE_SIZE;

/// Most RAM the bitmap can describe: 4 GiB.
pub const MAX_PAGES: usize = 1 << 20;

pub struct PageAllocator {
    bits: [u64; MAX_PAGES / 64],
    base: u64,
    npages: usize,
    free: usize,
    /// Index of the first page `init` made available; pages below it are never handed out.
    first: usize,
    /// Where the next first-fit search starts.
    hint: usize,
}

impl PageAllocator {
    pub const EMPTY: PageAllocator = PageAllocator {
        bits: [0; MAX_PAGES / 64],
        base: 0,
        npages: 0,
        free: 0,
        first: 0,
        hint: 0,
    };

    /// Describes RAM `[base, base + size)` with `[first_free, base + size)` free (`first_free`
    /// rounded up to a page; clamped to RAM). RAM beyond [`MAX_PAGES`] pages is left out.
    pub fn init(&mut self, base: u64, size: u64, first_free: u64) {
        self.bits.fill(0);
        self.base = base;
        self.npages = (size / PAGE_SIZE).min(MAX_PAGES as u64) as usize;
        let first =
            (first_free.saturating_sub(base).div_ceil(PAGE_SIZE)).min(self.npages as u64) as usize;
        for i in first..self.npages {
            self.set(i, true);
        }
        self.free = self.npages - first;
        self.first = first;
        self.hint = first;
    }

    /// Physical address of the first page `init` made available (pages below it are never
    /// handed out).
    pub fn first_managed(&self) -> u64 {
        self.base + self.first as u64 * PAGE_SIZE
    }

    fn get(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, free: bool) {
        if free {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }

    pub fn free_pages(&self) -> u64 {
        self.free as u64
    }

    pub fn total_pages(&self) -> u64 {
        self.npages as u64
    }

    /// Index of the page at `pa`, or None if `pa` is not a page-aligned RAM address.
    fn index(&self, pa: u64) -> Option<usize> {
        let off = pa.checked_sub(self.base)?;
        let i = off / PAGE_SIZE;
        (off % PAGE_SIZE == 0 && i < self.npages as u64).then_some(i as usize)
    }

    /// Whether the page at `pa` is free (false for addresses outside RAM).
    pub fn is_free(&self, pa: u64) -> bool {
        self.index(pa).is_some_and(|i| self.get(i))
    }

    /// Whether `[pa, pa + npages pages)` lies in RAM, `pa` page-aligned. False for any `npages`
    /// that would reach past the end of RAM, however large.
    pub fn in_ram(&self, pa: u64, npages: u64) -> bool {
        self.index(pa).is_some_and(|i| {
            (i as u64)
                .checked_add(npages)
                .is_some_and(|end| end <= self.npages as u64)
        })
    }

    /// Takes `npages` contiguous free pages (first fit from the hint, wrapping once). None for 0
    /// pages, more pages than are free, or no run long enough.
    pub fn alloc(&mut self, npages: usize) -> Option<u64> {
        if npages == 0 || npages > self.free {
            return None;
        }
        let n = self.npages;
        let mut start = self.hint;
        let mut scanned = 0;
        while scanned < n {
            if start + npages > n {
                scanned += n - start;
                start = 0;
                continue;
            }
            match (0..npages).find(|&k| !self.get(start + k)) {
                None => {
                    for k in 0..npages {
                        self.set(start + k, false);
                    }
                    self.free -= npages;
                    self.hint = (start + npages) % n;
                    return Some(self.base + start as u64 * PAGE_SIZE);
                }
                Some(k) => {
                    scanned += k + 1;
                    start += k + 1;
                }
            }
        }
        None
    }

    /// Gives back `npages` pages at `pa`. Panics if the range is not in RAM or any page of it
    /// is already free: callers validate through the tracker first, so either is a broken
    /// invariant. Nothing changes when it panics.
    pub fn free(&mut self, pa: u64, npages: u64) {
        assert!(
            self.in_ram(pa, npages),
            "page_alloc: free of {npages} page(s) at {pa:#x}: not (all) in RAM"
        );
        let i = self.index(pa).unwrap_or_default();
        let end = i + npages as usize;
        if let Some(k) = (i..end).find(|&k| self.get(k)) {
            panic!(
                "page_alloc: page {:#x} freed twice",
                self.base + k as u64 * PAGE_SIZE
            );
        }
        for k in i..end {
            self.set(k, true);
        }
        self.free += npages as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x8000_0000;
    const PAGE: u64 = PAGE_SIZE;

    /// An allocator over `total` pages of which the first `reserved` are never free.
    fn alloc(total: u64, reserved: u64) -> Box<PageAllocator> {
        let mut a = Box::new(PageAllocator::EMPTY);
        a.init(BASE, total * PAGE, BASE + reserved * PAGE);
        a
    }

    fn page(i: u64) -> u64 {
        BASE + i * PAGE
    }

    #[test]
    fn init_frees_everything_above_the_reserved_pages() {
        let a = alloc(64, 10);
        assert_eq!((a.total_pages(), a.free_pages()), (64, 54));
        assert_eq!(a.first_managed(), page(10));
        assert!(!a.is_free(page(9)));
        assert!(a.is_free(page(10)) && a.is_free(page(63)));
        assert!(!a.is_free(page(64)), "past RAM");
        assert!(!a.is_free(page(10) + 8), "unaligned");
    }

    #[test]
    fn init_rounds_the_first_free_page_up_and_clamps_to_ram() {
        let mut a = alloc(8, 0);
        a.init(BASE, 8 * PAGE, BASE + 2 * PAGE + 1);
        assert_eq!(a.first_managed(), page(3));
        assert_eq!(a.free_pages(), 5);
        a.init(BASE, 8 * PAGE, BASE + 100 * PAGE);
        assert_eq!(
            a.free_pages(),
            0,
            "a kernel end past RAM leaves nothing free"
        );
        assert_eq!(a.alloc(1), None);
        a.init(BASE, (MAX_PAGES as u64 + 5) * PAGE, BASE);
        assert_eq!(
            a.total_pages(),
            MAX_PAGES as u64,
            "RAM past the bitmap is left out"
        );
    }

    #[test]
    fn first_fit_hands_out_pages_in_order_from_the_first_managed() {
        let mut a = alloc(32, 4);
        assert_eq!(a.alloc(1), Some(page(4)));
        assert_eq!(a.alloc(2), Some(page(5)));
        assert_eq!(a.alloc(1), Some(page(7)));
        assert_eq!(a.free_pages(), 32 - 4 - 4);
        assert!(!a.is_free(page(5)) && !a.is_free(page(6)));
    }

    #[test]
    fn contiguous_runs_skip_holes_too_small() {
        let mut a = alloc(16, 0);
        let p: Vec<u64> = (0..8).map(|_| a.alloc(1).unwrap()).collect();
        // Holes of 1 and 2 pages at 1 and 4..6; nothing else free below 8 except these.
        a.free(p[1], 1);
        a.free(p[4], 1);
        a.free(p[5], 1);
        // From the hint (page 8) on: a 3-page run fits at 8.
        assert_eq!(a.alloc(3), Some(page(8)));
        // 5 pages left at 11..16: a 6-page run wraps, finds no room anywhere, fails cleanly.
        let free = a.free_pages();
        assert_eq!(a.alloc(6), None);
        assert_eq!(a.free_pages(), free, "a failed allocation takes nothing");
        // A 2-page run after wrapping: 11..13 from the hint first.
        assert_eq!(a.alloc(2), Some(page(11)));
        // Fill 13..16, then the search wraps to the holes: 2 pages fit only at 4..6.
        assert_eq!(a.alloc(3), Some(page(13)));
        assert_eq!(a.alloc(2), Some(page(4)));
        assert_eq!(a.alloc(1), Some(page(1)));
        assert_eq!(a.free_pages(), 0);
    }

    #[test]
    fn frees_give_pages_back_and_counts_stay_exact() {
        let mut a = alloc(64, 8);
        let total_free = a.free_pages();
        let runs: Vec<(u64, u64)> = (1..=6).map(|n| (a.alloc(n).unwrap(), n as u64)).collect();
        assert_eq!(a.free_pages(), total_free - 21);
        for &(pa, n) in runs.iter().rev() {
            a.free(pa, n);
            for k in 0..n {
                assert!(a.is_free(pa + k * PAGE));
            }
        }
        assert_eq!(a.free_pages(), total_free);
        // Everything can be had again, in one run.
        assert_eq!(a.alloc(total_free as usize), Some(page(8)));
        assert_eq!(a.free_pages(), 0);
    }

    #[test]
    fn exhaustion_fails_cleanly_and_recovers_after_a_free() {
        let mut a = alloc(20, 4);
        let got: Vec<u64> = std::iter::from_fn(|| a.alloc(1)).collect();
        assert_eq!(got.len(), 16);
        assert_eq!(a.free_pages(), 0);
        assert_eq!(a.alloc(1), None);
        a.free(got[7], 1);
        assert_eq!(a.alloc(1), Some(got[7]));
        assert_eq!(a.alloc(1), None);
    }

    #[test]
    fn zero_and_overflowing_requests_are_refused() {
        let mut a = alloc(64, 0);
        assert_eq!(a.alloc(0), None);
        assert_eq!(a.alloc(65), None);
        assert_eq!(a.alloc(usize::MAX), None);
        assert_eq!(a.alloc(usize::MAX / 2 + 1), None);
        assert_eq!(a.free_pages(), 64);
    }

    #[test]
    fn in_ram_is_false_for_any_range_past_the_end_however_large() {
        let a = alloc(64, 0);
        assert!(a.in_ram(page(0), 64));
        assert!(a.in_ram(page(63), 1));
        assert!(!a.in_ram(page(63), 2));
        assert!(!a.in_ram(page(64), 1));
        assert!(!a.in_ram(page(0) - PAGE, 1), "below RAM");
        assert!(!a.in_ram(page(1) + 1, 1), "unaligned");
        // npages so large that index + npages wraps around u64.
        for n in [u64::MAX, u64::MAX - 1, u64::MAX - 62, 1 << 63] {
            assert!(!a.in_ram(page(1), n), "npages {n:#x}");
            assert!(!a.in_ram(page(63), n), "npages {n:#x}");
        }
        assert!(!a.in_ram(!(PAGE - 1), 1));
    }

    #[test]
    #[should_panic(expected = "freed twice")]
    fn a_double_free_is_a_broken_invariant() {
        let mut a = alloc(8, 0);
        let p = a.alloc(2).unwrap();
        a.free(p, 2);
        a.free(p + PAGE, 1);
    }

    #[test]
    #[should_panic(expected = "not (all) in RAM")]
    fn freeing_past_ram_with_a_huge_count_is_a_broken_invariant_not_a_wrap() {
        let mut a = alloc(8, 0);
        let p = a.alloc(1).unwrap();
        a.free(p, u64::MAX);
    }

    #[test]
    fn a_free_that_panics_changes_nothing() {
        let mut a = alloc(8, 0);
        let p = a.alloc(3).unwrap();
        a.free(p + PAGE, 1);
        let free = a.free_pages();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.free(p, 3)));
        assert!(r.is_err());
        assert_eq!(a.free_pages(), free);
        assert!(!a.is_free(p) && !a.is_free(p + 2 * PAGE));
    }
}
