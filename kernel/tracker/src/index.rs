//! `SlotIndex`: the tracker's private O(1) lookups beside the flat `alloc_table`.
//!
//! Owns two structures, both indexed by slot number:
//! - a stack of recycled free slots (slots below the high-water mark whose entry was freed);
//!   slots at or above the high-water mark have never been used and are handed out in order;
//! - an open-addressing hash from an allocation's start address to its slot (linear probing,
//!   backward-shift deletion, so no tombstones and probe chains stay short).
//!
//! Invariant: a slot is in exactly one of {free stack, hash, never used}. The hash holds
//! `slot + 1` (0 = empty) and keys are compared against `alloc_table[slot].pa`, so the index
//! never stores a second copy of an address that could disagree with the table.

use crate::abi::{AllocEntry, MAX_TRACKED_ALLOCS, PAGE_SHIFT};

/// Buckets in the hash: a power of two, twice the slots, so the load factor stays at most 1/2.
const HASH_LEN: usize = 2 * MAX_TRACKED_ALLOCS;
const HASH_MASK: usize = HASH_LEN - 1;
const _: () = assert!(HASH_LEN.is_power_of_two());
const _: () = assert!(MAX_TRACKED_ALLOCS < u16::MAX as usize);

/// The tracker's lookup structures. All-zero is the valid empty state, so it can live in `.bss`.
pub struct SlotIndex {
    free_stack: [u16; MAX_TRACKED_ALLOCS],
    free_top: usize,
    hash: [u16; HASH_LEN],
}

impl SlotIndex {
    pub const EMPTY: SlotIndex = SlotIndex {
        free_stack: [0; MAX_TRACKED_ALLOCS],
        free_top: 0,
        hash: [0; HASH_LEN],
    };

    /// Takes a free slot: a recycled one if any, else the next never-used one (`*high_water`,
    /// which is then raised). Returns None when all slots are in use.
    pub(crate) fn take_slot(&mut self, high_water: &mut u64) -> Option<usize> {
        if self.free_top > 0 {
            self.free_top -= 1;
            return Some(self.free_stack[self.free_top] as usize);
        }
        let next = *high_water as usize;
        if next < MAX_TRACKED_ALLOCS {
            *high_water += 1;
            Some(next)
        } else {
            None
        }
    }

    /// Gives back a slot taken with `take_slot`. Caller guarantees it is not already free.
    pub(crate) fn put_slot(&mut self, slot: usize) {
        debug_assert!(
            self.free_top < MAX_TRACKED_ALLOCS,
            "free-slot stack overflow"
        );
        self.free_stack[self.free_top] = slot as u16;
        self.free_top += 1;
    }

    fn bucket(pa: u64) -> usize {
        // Fibonacci hashing of the page number: spreads consecutive pages across the table.
        let page = pa >> PAGE_SHIFT;
        (page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & HASH_MASK
    }

    /// The slot whose live entry starts at `pa`, if any.
    pub(crate) fn find(&self, table: &[AllocEntry], pa: u64) -> Option<usize> {
        let mut b = Self::bucket(pa);
        loop {
            match self.hash[b] {
                0 => return None,
                v => {
                    let slot = v as usize - 1;
                    if table[slot].pa == pa {
                        return Some(slot);
                    }
                }
            }
            b = (b + 1) & HASH_MASK;
        }
    }

    /// Records that `table[slot]` (already written) starts at its `pa`.
    /// Caller guarantees no other live entry has the same `pa`.
    pub(crate) fn insert(&mut self, table: &[AllocEntry], slot: usize) {
        let mut b = Self::bucket(table[slot].pa);
        while self.hash[b] != 0 {
            b = (b + 1) & HASH_MASK;
        }
        self.hash[b] = slot as u16 + 1;
    }

    /// Forgets `slot`, whose entry (still intact in `table`) starts at `pa`.
    /// Backward-shift deletion: later members of the probe run move up to fill the hole.
    pub(crate) fn remove(&mut self, table: &[AllocEntry], pa: u64, slot: usize) {
        let mut hole = Self::bucket(pa);
        while self.hash[hole] as usize != slot + 1 {
            debug_assert!(
                self.hash[hole] != 0,
                "slot {slot} missing from the pa index"
            );
            hole = (hole + 1) & HASH_MASK;
        }
        let mut b = hole;
        loop {
            b = (b + 1) & HASH_MASK;
            let v = self.hash[b];
            if v == 0 {
                break;
            }
            let home = Self::bucket(table[v as usize - 1].pa);
            // Move the member into the hole if its home bucket is not cyclically in (hole, b].
            let dist_home = b.wrapping_sub(home) & HASH_MASK;
            let dist_hole = b.wrapping_sub(hole) & HASH_MASK;
            if dist_home >= dist_hole {
                self.hash[hole] = v;
                hole = b;
            }
        }
        self.hash[hole] = 0;
    }
}
