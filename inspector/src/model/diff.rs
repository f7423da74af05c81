//! The difference between two snapshots: which allocations appeared and disappeared, and which
//! processes came and went. Entries are identified by (slot, pa, npages, owner): a slot reused
//! for another allocation between the two snapshots counts as one removal and one addition.

use super::{Entry, Snapshot};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Entry>,
    pub removed: Vec<Entry>,
    /// PIDs that own pages or have a process record in `new` but not in `old`.
    pub pids_new: Vec<u32>,
    /// PIDs that did in `old` but not in `new`.
    pub pids_gone: Vec<u32>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.pids_new.is_empty()
            && self.pids_gone.is_empty()
    }
}

fn key(e: &Entry) -> (usize, u64, u64, u32) {
    (e.slot, e.pa, e.npages, e.owner)
}

fn pid_set(s: &Snapshot) -> BTreeSet<u32> {
    s.entries
        .iter()
        .map(|e| e.owner)
        .chain(s.procs.iter().map(|p| p.pid))
        .collect()
}

/// What changed from `old` to `new`, in slot order.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Diff {
    let old_keys: HashSet<_> = old.entries.iter().map(key).collect();
    let new_keys: HashSet<_> = new.entries.iter().map(key).collect();
    let (old_pids, new_pids) = (pid_set(old), pid_set(new));
    Diff {
        added: new
            .entries
            .iter()
            .filter(|e| !old_keys.contains(&key(e)))
            .cloned()
            .collect(),
        removed: old
            .entries
            .iter()
            .filter(|e| !new_keys.contains(&key(e)))
            .cloned()
            .collect(),
        pids_new: new_pids.difference(&old_pids).copied().collect(),
        pids_gone: old_pids.difference(&new_pids).copied().collect(),
    }
}
