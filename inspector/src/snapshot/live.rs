//! Snapshots without halting the guest: the same reads as a halted snapshot, from memory the
//! guest keeps changing (a [`RamFile`](crate::target::RamFile)), made consistent with the
//! tracker's generation counter used as a sequence lock (docs/tracker-abi.md, "Reading without
//! halting"):
//!
//! read `generation` alone → odd: the kernel is inside a change, try again → copy the header and
//! what changed → read `generation` alone again → different: something changed while copying,
//! try again → else the copy is one consistent state. The process table, which the tracker's
//! lock does not cover, is read after that (once per snapshot, before the copy is decoded:
//! user sites are named by their owners' programs), so the window stays a few reads long.
//!
//! Contract: a snapshot returned is never torn. When the kernel stays inside a change past
//! [`LIVE_BOUND`] (a debugger holding it mid-change, a hang), [`Sampler::sample_live`] returns
//! the last consistent snapshot marked `mid_change` (stale), or [`SnapshotError::Torn`] when
//! there is none yet.

use super::{Sampler, SnapshotError};
use crate::model::{Header, ReadPath, Snapshot};
use crate::target::{GuestMemory, TargetError};
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
        let Some((addr, size)) = self.readers.generation else {
            return Ok(None);
        };
        // On the hot path: no allocation, no lookup by name.
        let mut b = [0u8; 8];
        let b = &mut b[..size];
        mem.read_guest(addr, b)?;
        Ok(Some(self.layout.endian.read_uint(b) as u64))
    }

    /// One attempt: Some(snapshot) when the copy is consistent, None when the kernel was (or
    /// came) inside a change. Read errors while the state moved are retried too: a torn
    /// pointer may point anywhere.
    ///
    /// When the generation moved since the previous snapshot, the bytes the read needs (the
    /// count, the new events, `alloc_table[0 .. high_water]`) are first copied raw and the
    /// generation checked again; they are decoded after, from the copies ([`Copied`]). So the
    /// window the kernel must leave alone is a few memory copies long, not a decode of a
    /// thousand events: a kernel changing the tracker every few microseconds still gets read.
    fn try_live<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let before = self.read_generation(mem)?;
        if before.is_some_and(|g| g % 2 == 1) {
            return Ok(None);
        }
        let header = self.read_header(mem)?;
        if before.is_some_and(|g| g != header.generation) {
            return Ok(None);
        }
        let rebooted = self.is_new_boot(&header);
        // A reboot reads everything afresh; a failed attempt must leave the sampler as it
        // was, so the reset is undone unless a snapshot comes of it.
        let kept = rebooted.then(|| (self.previous.take(), self.next_event.take()));
        let read = self.read_window(mem, header, before);
        if !matches!(read, Ok(Some(_))) {
            if let Some((previous, next_event)) = kept {
                (self.previous, self.next_event) = (previous, next_event);
            }
        }
        let Some(mut snap) = read? else {
            return Ok(None);
        };
        snap.pause_us = 0;
        snap.mid_change = false;
        snap.rebooted = rebooted;
        snap.read_path = ReadPath::Ram;
        self.keep(&snap);
        Ok(Some(snap))
    }

    /// The rest of one attempt, after a header of generation `before` (even): None when the
    /// generation moved meanwhile.
    fn read_window<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        header: Header,
        before: Option<u64>,
    ) -> Result<Option<Snapshot>, SnapshotError> {
        let unchanged = self
            .previous
            .as_ref()
            .is_some_and(|p| p.header.generation == header.generation);
        let limit = super::span_limit(&header);
        if unchanged || before.is_none() {
            // Nothing new to copy (or no generation to check a copy against: such kernels
            // are refused above, this only keeps the direct path for them).
            let result = self.read_rest(mem, header, false);
            if self.read_generation(mem)? != before {
                return Ok(None);
            }
            let mut snap = result?;
            snap.procs = self.read_procs(mem, limit)?;
            return Ok(Some(snap));
        }
        let copied = self.copy_changed(mem, &header);
        // Torn sizes or pointers fail the copy: the state moved, or the error is real.
        if self.read_generation(mem)? != before {
            return Ok(None);
        }
        let spans = copied?;
        // The process table after the window (it is not under the tracker's lock), and
        // before decoding: a user site is named by its owner's program, and every owner of
        // what was copied has its name in the table by now (it allocated before the copy).
        let procs = self.read_procs(mem, limit)?;
        let mut snap = self.read_rest(&mut Copied { spans, live: mem }, header, false)?;
        snap.procs = procs;
        Ok(Some(snap))
    }

    /// Raw copies of what a read after `header` needs from the tracker: the count, the events
    /// not yet read, and the table up to the high-water mark.
    fn copy_changed<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        header: &Header,
    ) -> Result<Vec<(u64, Vec<u8>)>, SnapshotError> {
        let limit = super::span_limit(header);
        let layout = std::sync::Arc::clone(&self.layout);
        let mut wanted = Vec::new();
        if let Some(c) = &layout.count {
            wanted.push((c.address, c.size));
        }
        if let Some(ring) = layout.events.as_ref().filter(|r| r.array.len > 0) {
            let range = self.event_range(ring.array.len, header.event_head);
            for (_, start, end) in
                super::events::ring_runs(ring.array.len, range.from, header.event_head)
            {
                wanted.push(super::checked_span(
                    ring,
                    start,
                    end,
                    "alloc_events",
                    limit,
                )?);
            }
        }
        wanted.push(super::checked_span(
            &layout.table,
            0,
            header.high_water,
            "alloc_table",
            limit,
        )?);
        let mut spans = Vec::with_capacity(wanted.len());
        for (addr, len) in wanted {
            let mut bytes = vec![0; len];
            mem.read_guest(addr, &mut bytes)?;
            spans.push((addr, bytes));
        }
        Ok(spans)
    }
}

/// Guest memory served from raw copies taken inside the sequence-lock window (`spans`: address
/// and bytes); a read outside them (a tag string the ELF does not hold) goes to the live
/// memory. Strings the tracker points to never change once written, so reading them after
/// the window is sound.
struct Copied<'m, M: ?Sized> {
    spans: Vec<(u64, Vec<u8>)>,
    live: &'m mut M,
}

impl<M: GuestMemory + ?Sized> GuestMemory for Copied<'_, M> {
    fn read_guest(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        let len = buf.len() as u64;
        let span = self.spans.iter().find(|(base, bytes)| {
            addr >= *base
                && addr
                    .checked_add(len)
                    .is_some_and(|end| end <= base + bytes.len() as u64)
        });
        match span {
            Some((base, bytes)) => {
                let at = (addr - base) as usize;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                Ok(())
            }
            None => self.live.read_guest(addr, buf),
        }
    }
}
