//! Snapshots without halting the guest: the same reads as a halted snapshot, from memory the
//! guest keeps changing (a [`RamFile`](crate::target::RamFile)), made consistent with the
//! tracker's generation counter used as a sequence lock (docs/tracker-abi.md, "Reading without
//! halting"):
//!
//! read `generation` alone → odd: the kernel is inside a change, try again → copy the header and
//! what changed → read `generation` alone again → different: something changed while copying,
//! try again → else the copy is one consistent state. The process table, which the tracker's
//! lock does not cover, is read after that, so the window stays a few reads long.
//!
//! Contract: a snapshot returned is never torn. When the kernel stays inside a change past
//! [`LIVE_BOUND`] (a debugger holding it mid-change, a hang), [`Sampler::sample_live`] returns
//! the last consistent snapshot marked `mid_change` (stale), or [`SnapshotError::Torn`] when
//! there is none yet.

use super::{Sampler, SnapshotError};
use crate::model::{ReadPath, Snapshot};
use crate::target::GuestMemory;
use std::time::{Duration, Instant};

/// How long a live read keeps retrying a tracker that is mid-change (or changing under every
/// copy) before it reports the last consistent state instead. A change takes the kernel
/// microseconds; the bound also caps what one read can cost the host.
pub const LIVE_BOUND: Duration = Duration::from_millis(2);

impl Sampler {
    /// Takes one snapshot from memory the guest keeps changing, never halting it (see the
    /// module doc). `pause_us` is 0: the guest never waits for the reader.
    pub fn sample_live<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Snapshot, SnapshotError> {
        self.layout.check()?;
        if !self.layout.has_generation() {
            // Without the sequence lock a copy could be torn: refuse rather than guess.
            return Err(SnapshotError::NoGeneration);
        }
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if let Some(snap) = self.try_live(mem)? {
                return Ok(snap);
            }
            if start.elapsed() > LIVE_BOUND {
                let mut stale = self.stale()?;
                stale.read_path = ReadPath::Ram;
                return Ok(stale);
            }
            // A change takes the kernel microseconds, and QEMU needs the host's CPUs to finish
            // it: yield at once, then sleep, rather than spin.
            spins += 1;
            if spins > 4 {
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Checks that the ELF's build stamp is the one in `mem` (the stamp never changes while
    /// the kernel runs, so no lock is needed).
    pub fn check_build_id_live<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<(), SnapshotError> {
        let Some((addr, want)) = self.layout.build_id.clone() else {
            return Ok(());
        };
        let mut got = vec![0; want.len()];
        mem.read_guest(addr, &mut got)?;
        if got == want {
            Ok(())
        } else {
            Err(SnapshotError::BuildIdMismatch)
        }
    }

    /// The generation alone, when the kernel exports one.
    fn read_generation<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Option<u64>, SnapshotError> {
        let Some((addr, layout)) = &self.layout.header else {
            return Ok(None);
        };
        let Some(f) = layout.field("generation") else {
            return Ok(None);
        };
        // On the hot path: no allocation. The layout check bounds integer fields to 8 bytes.
        let mut b = [0u8; 8];
        let b = &mut b[..(f.size as usize).min(8)];
        mem.read_guest(addr + f.offset, b)?;
        Ok(Some(self.layout.endian.read_uint(b) as u64))
    }

    /// One attempt: Some(snapshot) when the copy is consistent, None when the kernel was (or
    /// came) inside a change. Read errors while the state moved are retried too: a torn
    /// pointer may point anywhere.
    fn try_live<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        // Before the window (it is not under the tracker's lock): the entries' user sites are
        // named by their owners' programs.
        let procs = self.read_procs(mem, super::MAX_SPAN_BYTES)?;
        let before = self.read_generation(mem)?;
        if before.is_some_and(|g| g % 2 == 1) {
            return Ok(None);
        }
        let header = self.read_header(mem)?;
        if before.is_some_and(|g| g != header.generation) {
            return Ok(None);
        }
        let rebooted = self.is_new_boot(&header);
        // A failed attempt must leave the sampler as it was: a reboot's reset is undone.
        let kept = rebooted.then(|| (self.previous.take(), self.next_event.take()));
        let result = self.read_rest(mem, header, false);
        let after = self.read_generation(mem)?;
        if after != before || result.is_err() {
            if let Some((previous, next_event)) = kept {
                (self.previous, self.next_event) = (previous, next_event);
            }
        }
        if after != before {
            return Ok(None);
        }
        let mut snap = result?;
        snap.procs = procs;
        snap.pause_us = 0;
        snap.mid_change = false;
        snap.rebooted = rebooted;
        snap.read_path = ReadPath::Ram;
        self.keep(&snap);
        Ok(Some(snap))
    }
}
