//! The physical page allocator: a bitmap over RAM, one bit per 4 KiB page (1 = free).
//!
//! Invariants: `free` equals the number of set bits; pages below the end of the kernel image
//! (firmware, kernel) are never free; only this module flips bits. It knows nothing about
//! owners: `mm` pairs every handout with a tracker entry.

use tracker::abi::PAGE_SIZE;

/// Most RAM the bitmap can describe: 4 GiB.
const MAX_PAGES: usize = 1 << 20;

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

    /// Describes RAM `[base, base + size)` with `[first_free, base + size)` free.
    pub fn init(&mut self, base: u64, size: u64, first_free: u64) {
        self.base = base;
        self.npages = ((size / PAGE_SIZE) as usize).min(MAX_PAGES);
        let first = ((first_free - base).div_ceil(PAGE_SIZE)) as usize;
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
        let i = (off / PAGE_SIZE) as usize;
        (off % PAGE_SIZE == 0 && i < self.npages).then_some(i)
    }

    /// Whether the page at `pa` is free (false for addresses outside RAM).
    pub fn is_free(&self, pa: u64) -> bool {
        self.index(pa).is_some_and(|i| self.get(i))
    }

    /// Whether `[pa, pa + npages pages)` lies in RAM.
    pub fn in_ram(&self, pa: u64, npages: u64) -> bool {
        self.index(pa)
            .is_some_and(|i| i as u64 + npages <= self.npages as u64)
    }

    /// Takes `npages` contiguous free pages (first fit from the hint, wrapping once).
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

    /// Gives back `npages` pages at `pa`. Panics if any of them is already free or outside
    /// RAM: callers validate through the tracker first, so this is a broken invariant.
    pub fn free(&mut self, pa: u64, npages: u64) {
        let i = self
            .index(pa)
            .unwrap_or_else(|| panic!("page_alloc: free of non-RAM pa {pa:#x}"));
        for k in i..i + npages as usize {
            assert!(
                k < self.npages && !self.get(k),
                "page_alloc: page {:#x} freed twice",
                self.base + k as u64 * PAGE_SIZE
            );
            self.set(k, true);
        }
        self.free += npages as usize;
    }
}
