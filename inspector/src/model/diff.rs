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

/// Pages gained and lost by one owner between two snapshots (from a [`Diff`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PidChange {
    pub pid: u32,
    pub name: String,
    pub gained_pages: u64,
    pub lost_pages: u64,
    /// `gained_pages - lost_pages`.
    pub net_pages: i64,
}

/// Pages gained and lost under one tag between two snapshots (from a [`Diff`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagChange {
    pub tag: String,
    pub gained_pages: u64,
    pub lost_pages: u64,
    pub net_pages: i64,
}

/// (gained, lost) pages per key of the added and removed entries, by key.
fn tally<K: Ord>(d: &Diff, key: impl Fn(&Entry) -> K) -> std::collections::BTreeMap<K, (u64, u64)> {
    let mut by: std::collections::BTreeMap<K, (u64, u64)> = Default::default();
    for e in &d.added {
        by.entry(key(e)).or_default().0 += e.npages;
    }
    for e in &d.removed {
        by.entry(key(e)).or_default().1 += e.npages;
    }
    by
}

impl Diff {
    /// Pages gained and lost per owner, by pid; `name` names a pid.
    pub fn by_pid(&self, name: impl Fn(u32) -> String) -> Vec<PidChange> {
        tally(self, |e| e.owner)
            .into_iter()
            .map(|(pid, (gained, lost))| PidChange {
                pid,
                name: name(pid),
                gained_pages: gained,
                lost_pages: lost,
                net_pages: gained as i64 - lost as i64,
            })
            .collect()
    }

    /// Pages gained and lost per tag, by tag.
    pub fn by_tag(&self) -> Vec<TagChange> {
        tally(self, |e| e.tag.to_string())
            .into_iter()
            .map(|(tag, (gained, lost))| TagChange {
                tag,
                gained_pages: gained,
                lost_pages: lost,
                net_pages: gained as i64 - lost as i64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{entry, sample};
    use std::sync::Arc;

    #[test]
    fn pages_gained_and_lost_per_pid_and_per_tag() {
        let old = sample();
        let mut new = sample();
        let entries = Arc::make_mut(&mut new.entries);
        entries.retain(|e| e.slot != 2); // pid 7 loses 2 heap pages
        entries.push(entry(9, 0x8090_0000, 5, 8, "heap")); // pid 8 gains 5
        entries.push(entry(10, 0x8095_0000, 1, 7, "user_stack")); // pid 7 gains 1
        let d = diff(&old, &new);
        assert_eq!(
            d.removed.iter().map(|e| e.slot).collect::<Vec<_>>(),
            [2],
            "{d:?}"
        );
        assert_eq!(d.added.iter().map(|e| e.slot).collect::<Vec<_>>(), [9, 10]);
        let pids = d.by_pid(|p| format!("p{p}"));
        let row = |pid| pids.iter().find(|r| r.pid == pid).unwrap();
        assert_eq!(
            (row(7).gained_pages, row(7).lost_pages, row(7).net_pages),
            (1, 2, -1)
        );
        assert_eq!(
            (row(8).gained_pages, row(8).net_pages, row(8).name.as_str()),
            (5, 5, "p8")
        );
        assert_eq!(pids.len(), 2);
        let tags = d.by_tag();
        assert_eq!(
            tags.iter()
                .map(|t| (t.tag.as_str(), t.net_pages))
                .collect::<Vec<_>>(),
            [("heap", 3), ("user_stack", 1)]
        );
    }
}
