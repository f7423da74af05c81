//! [`MemCache`]: the client's memory reads of one stop, in blocks. gdb reads small pieces, the
//! same ones again and again (the instruction at pc three times per `stepi`, a stack frame, an
//! `x` dump 8 bytes a packet); each is a round trip to QEMU. Within the kernel image's load
//! segments (RAM: no device registers, whose reads have side effects) the cache reads a whole
//! block once and answers the rest from it.
//!
//! Contract: the owner calls [`MemCache::moved`] whenever the guest moved (a resume, a step, a
//! stop): blocks of writable segments are forgotten, those of read-only ones (code, rodata,
//! which the kernel does not change) kept; and [`MemCache::clear`] whenever memory may have
//! been changed from outside (a memory write, a monitor command, a new connection). While
//! every vCPU is stopped, guest RAM changes only through the connection the arbiter owns.
//! Reads outside the segments, and blocks the stub refuses, go to the guest as asked.

use std::collections::HashMap;
use std::ops::Range;

use crate::target::TargetError;

/// Bytes per block: one `m` request (QEMU answers up to 0x800 bytes).
pub const BLOCK: u64 = 0x400;
/// At most this many blocks are kept (1 MiB); beyond, the cache starts over.
const MAX_BLOCKS: usize = 1024;

/// See the module doc.
#[derive(Debug, Default)]
pub struct MemCache {
    /// Address ranges that may be read ahead (the kernel's load segments, virtual addresses),
    /// and whether each is writable.
    cacheable: Vec<(Range<u64>, bool)>,
    /// Block start → its bytes (a block is clipped to the cacheable range it is in).
    blocks: HashMap<u64, Box<[u8]>>,
}

impl MemCache {
    /// A cache for reads within `cacheable`: ranges of virtual addresses, each with whether
    /// it is writable.
    pub fn new(cacheable: Vec<(Range<u64>, bool)>) -> MemCache {
        MemCache {
            cacheable,
            blocks: HashMap::new(),
        }
    }

    /// Forgets every block (see the module contract).
    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Forgets the blocks of writable ranges (see the module contract).
    pub fn moved(&mut self) {
        let cacheable = &self.cacheable;
        self.blocks.retain(|start, _| {
            cacheable
                .iter()
                .any(|(r, writable)| !writable && r.contains(start))
        });
    }

    /// Fills `buf` from `addr`, from blocks where it can, reading missing ones with `fetch`
    /// (`fetch(addr, buf)` reads guest memory); reads `buf` with `fetch` directly where it
    /// cannot.
    pub fn read(
        &mut self,
        addr: u64,
        buf: &mut [u8],
        mut fetch: impl FnMut(u64, &mut [u8]) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let end = addr.checked_add(buf.len() as u64);
        let range = self
            .cacheable
            .iter()
            .find(|(r, _)| end.is_some_and(|end| r.start <= addr && end <= r.end))
            .map(|(r, _)| r.clone());
        let Some(range) = range else {
            return fetch(addr, buf);
        };
        let mut at = addr;
        while at < addr + buf.len() as u64 {
            let start = (at - at % BLOCK).max(range.start);
            if !self.blocks.contains_key(&start) {
                let len = (start - start % BLOCK + BLOCK).min(range.end) - start;
                let mut block = vec![0u8; len as usize].into_boxed_slice();
                if fetch(start, &mut block).is_err() {
                    // Part of the block may be unmapped: ask for what gdb asked, as it asked.
                    return fetch(addr, buf);
                }
                if self.blocks.len() >= MAX_BLOCKS {
                    self.blocks.clear();
                }
                self.blocks.insert(start, block);
            }
            let block = &self.blocks[&start];
            let from = (at - start) as usize;
            let n = (block.len() - from).min((addr + buf.len() as u64 - at) as usize);
            let to = (at - addr) as usize;
            buf[to..to + n].copy_from_slice(&block[from..from + n]);
            at += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guest memory where byte `a` holds `a as u8`; counts the reads.
    fn guest(
        reads: &mut Vec<(u64, usize)>,
    ) -> impl FnMut(u64, &mut [u8]) -> Result<(), TargetError> + '_ {
        move |addr, buf| {
            reads.push((addr, buf.len()));
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (addr + i as u64) as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn reads_inside_the_segments_come_from_blocks_fetched_once() {
        let mut c = MemCache::new(vec![(0x1000..0x1900, true), (0x4000..0x5000, false)]);
        let mut reads = Vec::new();
        let mut buf = [0u8; 8];
        for round in 0..2 {
            for at in (0x13f0..0x1410).step_by(8) {
                c.read(at, &mut buf, guest(&mut reads)).unwrap();
                let want: Vec<u8> = (at..at + 8).map(|a| a as u8).collect();
                assert_eq!(buf.to_vec(), want, "round {round} at {at:#x}");
            }
        }
        assert_eq!(reads, vec![(0x1000, 0x400), (0x1400, 0x400)]);
        // The last block is clipped to the segment.
        c.read(0x18f8, &mut buf, guest(&mut reads)).unwrap();
        assert_eq!(reads.last(), Some(&(0x1800, 0x100)));
        c.moved();
        c.read(0x1000, &mut buf, guest(&mut reads)).unwrap();
        assert_eq!(
            reads.len(),
            4,
            "moved: a writable range's block is fetched again"
        );
    }

    #[test]
    fn read_only_blocks_outlive_a_move_not_a_clear() {
        let mut c = MemCache::new(vec![(0x1000..0x2000, true), (0x4000..0x5000, false)]);
        let mut reads = Vec::new();
        let mut buf = [0u8; 8];
        c.read(0x4010, &mut buf, guest(&mut reads)).unwrap();
        c.moved();
        c.read(0x4020, &mut buf, guest(&mut reads)).unwrap();
        assert_eq!(
            reads,
            vec![(0x4000, 0x400)],
            "code is not re-read after a step"
        );
        c.clear();
        c.read(0x4020, &mut buf, guest(&mut reads)).unwrap();
        assert_eq!(reads.len(), 2, "a memory write forgets everything");
    }

    #[test]
    fn reads_outside_the_segments_or_refused_blocks_go_as_asked() {
        let mut c = MemCache::new(vec![(0x1000..0x2000, true), (0x4000..0x5000, false)]);
        let mut reads = Vec::new();
        let mut buf = [0u8; 4];
        c.read(0x0ffe, &mut buf, guest(&mut reads)).unwrap();
        c.read(0x1ffe, &mut buf, guest(&mut reads)).unwrap();
        c.read(0x1ffe, &mut buf, guest(&mut reads)).unwrap();
        assert_eq!(reads, vec![(0x0ffe, 4), (0x1ffe, 4), (0x1ffe, 4)]);
        let mut refusing = |addr: u64, buf: &mut [u8]| {
            if buf.len() > 4 {
                return Err(TargetError::Unreadable {
                    addr,
                    len: buf.len(),
                    code: Some(14),
                });
            }
            buf.fill(7);
            Ok(())
        };
        c.read(0x1100, &mut buf, &mut refusing).unwrap();
        assert_eq!(buf, [7; 4]);
    }
}
