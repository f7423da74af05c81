//! Consistency for a kernel without a generation counter (the chapter's bare `alloc_table`):
//! a table read is trusted only when the halted guest is *not* inside one of the functions that
//! change the table. Their address ranges come from DWARF (else the ELF symbol table).
//!
//! Contract (docs/your-kernel.md, docs/tracker-abi.md): such a kernel changes `alloc_table`
//! and `alloc_table_count` only in the code of [`TRACKER_WRITERS`], makes no call in the middle
//! of a change, and never from an interrupt handler. Then a guest halted with its pc outside
//! those ranges holds a consistent table; inside one, the sampler lets it run briefly and
//! halts again, within a bound, as it does for an odd generation. A guest held there by a
//! debugger gives the last consistent snapshot, marked `mid_change`.
//!
//! Only the pc of the hart the stub reports registers for is looked at (QEMU: the first hart):
//! the chapter's kernels run the tracker on one hart, the C example on hart 0.

use super::{Sampler, SnapshotError};
use crate::dwarf::{DebugInfo, SymbolType};
use crate::model::{ReadPath, Snapshot};
use crate::target::{GuestMemory, Target};
use std::ops::Range;

/// The chapter's functions that write `alloc_table`: a read is never reported while the
/// guest's pc is inside one of them. (`dump_allocs` and `dump_allocs_for_pid` only read it;
/// `free_proc` changes it only through `free_all_tracked_for_pid` and `track_free`.)
pub const TRACKER_WRITERS: [&str; 3] = ["track_alloc", "track_free", "free_all_tracked_for_pid"];

/// The address ranges of the functions that write the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackerCode {
    ranges: Vec<(String, Range<u64>)>,
}

impl TrackerCode {
    /// The ranges of every [`TRACKER_WRITERS`] function `debug` knows: each concrete DWARF
    /// function of that name (several with static copies), else the ELF function symbol of that
    /// name and size. A function the kernel does not have is simply not there.
    pub fn resolve(debug: &DebugInfo) -> TrackerCode {
        let mut ranges = Vec::new();
        for name in TRACKER_WRITERS {
            let before = ranges.len();
            ranges.extend(
                debug
                    .functions()
                    .iter()
                    .filter(|f| f.name == name && f.low_pc < f.high_pc)
                    .map(|f| (name.to_string(), f.low_pc..f.high_pc)),
            );
            if ranges.len() == before {
                ranges.extend(
                    debug
                        .elf()
                        .symbols()
                        .iter()
                        .filter(|s| s.name == name && s.kind == SymbolType::Function && s.size > 0)
                        .map(|s| {
                            (
                                name.to_string(),
                                s.address..s.address.saturating_add(s.size),
                            )
                        }),
                );
            }
        }
        TrackerCode { ranges }
    }

    /// Explicit ranges (tests, and kernels whose writers have other names).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (String, Range<u64>)>) -> TrackerCode {
        TrackerCode {
            ranges: ranges.into_iter().collect(),
        }
    }

    /// The writer whose code holds `pc`, if any.
    pub fn function_at(&self, pc: u64) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(_, r)| r.contains(&pc))
            .map(|(name, _)| name.as_str())
    }

    /// True when no writer was found (then nothing can be checked).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl Sampler {
    /// The function that writes the table and holds one of `pcs` (the harts' pcs in a dump),
    /// for a kernel without a generation counter; None when none does, or when the kernel has
    /// a generation counter (its consistency does not depend on where the harts were).
    pub fn writer_at(&self, pcs: &[u64]) -> Option<&str> {
        let code = self.tracker_code.as_ref()?;
        pcs.iter().find_map(|&pc| code.function_at(pc))
    }

    /// True when the kernel has no generation counter, so a copy of its memory is consistent
    /// only if no hart was inside [`TRACKER_WRITERS`] (see [`writer_at`](Self::writer_at)).
    pub fn needs_quiescence(&self) -> bool {
        self.tracker_code.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// One snapshot of memory that no longer changes (a dump): everything read afresh, as a
    /// halted read would, without halting anything. An odd generation (dumped inside a
    /// change) is [`SnapshotError::Torn`]. For a kernel without a generation counter the caller
    /// checks the harts' pcs first ([`writer_at`](Self::writer_at)).
    pub fn sample_still<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Snapshot, SnapshotError> {
        self.layout.check()?;
        self.reset();
        let header = self.read_header(mem)?;
        if header.generation % 2 == 1 {
            return Err(SnapshotError::Torn);
        }
        let mut snap = self.read_rest(mem, header, true)?;
        snap.read_path = ReadPath::Ram;
        Ok(snap)
    }

    /// True when the sampler guards a kernel without a generation counter and the halted
    /// guest's pc is inside code that writes the table: its table may be half-changed.
    pub(super) fn inside_tracker_code<T: Target + ?Sized>(
        &self,
        halted: &mut T,
    ) -> Result<bool, SnapshotError> {
        match &self.tracker_code {
            Some(code) if !code.is_empty() => {
                let pc = halted.read_registers()?.pc();
                Ok(code.function_at(pc).is_some())
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TrackerCode;

    #[test]
    fn a_pc_inside_a_writer_is_named_and_the_end_is_exclusive() {
        let code = TrackerCode::from_ranges([
            ("track_alloc".to_string(), 0x100..0x140),
            ("track_free".to_string(), 0x200..0x210),
        ]);
        assert_eq!(code.function_at(0x100), Some("track_alloc"));
        assert_eq!(code.function_at(0x13f), Some("track_alloc"));
        assert_eq!(code.function_at(0x140), None);
        assert_eq!(code.function_at(0x20f), Some("track_free"));
        assert_eq!(code.function_at(0xfff), None);
        assert!(!code.is_empty());
        assert!(TrackerCode::default().is_empty());
    }
}
