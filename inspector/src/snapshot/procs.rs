//! Decoding the kernel's process table (`proc_table`, docs/tracker-abi.md) into
//! [`Process`]es, by field name: `pid` and `state` (records with pid 0 or state `Unused` are
//! skipped), `name` (inline bytes or a string reference), `parent`, and `hart` when the kernel
//! records it (older kernels and the C example do not: `hart` is then `None` for all).

use super::{
    checked_span, nul_terminated, read_into, readers, Sampler, SnapshotError, MAX_SPAN_BYTES,
};
use crate::model::{ProcState, Process};
use crate::target::GuestMemory;
use std::sync::Arc;

/// `ProcInfo.hart` of a process that runs on no hart (the ABI's `NO_HART`).
const NO_HART: u64 = u32::MAX as u64;

impl Sampler {
    /// The process table alone, read now (e.g. at a breakpoint stop, to name the process on
    /// the hart that stopped); empty when the kernel exports none. Reading through a stub
    /// needs the target halted.
    pub fn processes<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
    ) -> Result<Vec<Process>, SnapshotError> {
        self.read_procs(t, MAX_SPAN_BYTES)
    }

    pub(super) fn read_procs<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        limit: u64,
    ) -> Result<Vec<Process>, SnapshotError> {
        let layout = Arc::clone(&self.layout);
        let Some(procs) = &layout.procs else {
            return Ok(Vec::new());
        };
        let (addr, len) = checked_span(procs, 0, procs.array.len, "proc_table", limit)?;
        let mut bytes = std::mem::take(&mut self.buf);
        read_into(t, &mut bytes, addr, len)?;
        // An unchanged table (the common case at 60 Hz) decodes to what it did last time.
        if let Some((raw, procs)) = &self.last_procs {
            if *raw == bytes {
                let procs = procs.clone();
                self.buf = bytes;
                return Ok(procs);
            }
        }
        let readers = Arc::clone(&self.readers);
        let r = &readers.procs;
        let mut out = Vec::new();
        for i in 0..procs.array.len {
            let Some(rec) = procs.array.element_bytes(&bytes, i) else {
                break;
            };
            let pid = readers::or_zero(&r.pid, rec) as u32;
            if pid == 0 {
                continue;
            }
            let state = r
                .state
                .as_ref()
                .map_or(ProcState::Other(String::new()), |f| {
                    match f.enum_name(rec) {
                        Some(name) => ProcState::from_name(name),
                        None => ProcState::Other(f.read_u64(rec).unwrap_or(0).to_string()),
                    }
                });
            if state == ProcState::Unused {
                continue;
            }
            let name = match &r.name {
                Some(f) if f.read_str(rec).is_some() => self.string(t, f, rec)?.to_string(),
                Some(f) => f.bytes(rec).map(nul_terminated).unwrap_or_default(),
                None => String::new(),
            };
            let parent = readers::or_zero(&r.parent, rec) as u32;
            // Only a running process is on a hart, whatever a stale field says.
            let hart = r
                .hart
                .as_ref()
                .and_then(|f| f.read(rec))
                .filter(|&h| h != NO_HART && h <= u32::MAX as u64 && state == ProcState::Running)
                .map(|h| h as u32);
            out.push(Process {
                pid,
                parent,
                name,
                state,
                hart,
            });
        }
        self.last_procs = Some((bytes.clone(), out.clone()));
        self.buf = bytes;
        // Rebuilt only when a process came, went or changed its name (a state change alone
        // keeps the map).
        let same = self.proc_names.len() == out.len()
            && out
                .iter()
                .all(|p| self.proc_names.get(&p.pid).is_some_and(|n| **n == *p.name));
        if !same {
            self.proc_names = out.iter().map(|p| (p.pid, Arc::from(&*p.name))).collect();
        }
        Ok(out)
    }
}
