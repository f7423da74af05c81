//! Events for a kernel without an event ring (the chapter's bare `alloc_table`): derived by
//! comparing each snapshot with the previous one, so `watch`, the TUI's event list and the
//! leak reports work the same on such a kernel.
//!
//! Contract: an entry that appeared is an `Alloc`; an entry that disappeared is an
//! `ExitReclaim` when its owner (not the kernel) has exited, else a `Free`. Exited means: with a
//! process table (`proc_table`), the owner has no record any more or its record is a zombie or
//! unused, so a snapshot taken half-way through an exit sweep counts the part already swept as
//! reclaimed too; without one, the owner owns nothing any more. Removals come first, then
//! additions, each in slot order. Sequence numbers count up across the sampler's life (a
//! reconnect does not restart them) and the snapshot's `event_head` is the next one, as for a
//! kernel's ring. What a comparison cannot see is not reported: an allocation made and freed
//! between two snapshots; and a free the exiting process itself made just before it exited,
//! when no snapshot fell in between, counts as reclaimed. The first snapshot has no events:
//! there is nothing to compare it with.

use super::Sampler;
use crate::model::{diff, Entry, Event, EventKind, ProcState, Snapshot, KERNEL_PID};

impl Sampler {
    /// Fills `snap.events` and `snap.header.event_head` from the difference with the previous
    /// snapshot, when the kernel has no event ring; a no-op when it has one.
    pub(super) fn derive_events(&mut self, snap: &mut Snapshot) {
        if self.layout.events.is_some() {
            return;
        }
        if let Some(previous) = &self.previous {
            let has_procs = self.layout.procs.is_some();
            snap.events = derive(previous, snap, has_procs, &mut self.derived_head);
        }
        snap.missed_events = 0;
        snap.header.event_head = self.derived_head;
    }
}

/// The events that take `previous` to `new`, numbered from `*next_seq` (advanced past them);
/// `has_procs`: the kernel exports a process table (see the module doc).
pub fn derive(
    previous: &Snapshot,
    new: &Snapshot,
    has_procs: bool,
    next_seq: &mut u64,
) -> Vec<Event> {
    let d = diff(previous, new);
    let mut events = Vec::with_capacity(d.removed.len() + d.added.len());
    let mut push = |kind: EventKind, e: &Entry| {
        events.push(Event {
            seq: *next_seq,
            kind,
            owner: e.owner,
            slot: Some(e.slot),
            pa: e.pa,
            npages: e.npages,
            tag: e.tag.clone(),
            time: e.time,
            site: e.site.clone(),
            user_site: e.user_site.clone(),
        });
        *next_seq += 1;
    };
    for e in &d.removed {
        let kind = if exited(e.owner, new, has_procs) {
            EventKind::ExitReclaim
        } else {
            EventKind::Free
        };
        push(kind, e);
    }
    for e in &d.added {
        push(EventKind::Alloc, e);
    }
    events
}

/// True when `owner` is a process that exited by the time of `snap` (see the module doc).
fn exited(owner: u32, snap: &Snapshot, has_procs: bool) -> bool {
    if owner == KERNEL_PID {
        return false;
    }
    if has_procs {
        snap.process(owner)
            .is_none_or(|p| matches!(p.state, ProcState::Zombie | ProcState::Unused))
    } else {
        !snap.entries.iter().any(|e| e.owner == owner)
    }
}

#[cfg(test)]
mod tests {
    use super::derive;
    use crate::model::{Entry, EventKind, ProcState, Process, Snapshot};

    fn entry(slot: usize, pa: u64, owner: u32) -> Entry {
        Entry {
            slot,
            pa,
            npages: 1,
            owner,
            tag: "t".into(),
            time: 0,
            site: None,
            user_site: None,
        }
    }

    fn snap(entries: Vec<Entry>, procs: Vec<(u32, ProcState)>) -> Snapshot {
        Snapshot {
            entries: entries.into(),
            procs: procs
                .into_iter()
                .map(|(pid, state)| Process {
                    pid,
                    parent: 0,
                    name: "demo".into(),
                    state,
                    hart: None,
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn kinds(events: &[crate::model::Event]) -> Vec<(EventKind, u32, u64, u64)> {
        events
            .iter()
            .map(|e| (e.kind.clone(), e.owner, e.pa, e.seq))
            .collect()
    }

    #[test]
    fn frees_of_a_live_owner_reclaims_of_a_gone_one_then_allocs() {
        let old = snap(
            vec![
                entry(0, 0x1000, 3),
                entry(1, 0x2000, 3),
                entry(2, 0x3000, 4),
            ],
            vec![(3, ProcState::Running), (4, ProcState::Running)],
        );
        // 3 freed one page and lives on; 4 exited (zombie) leaving 0x3000; 5 allocated.
        let new = snap(
            vec![entry(1, 0x2000, 3), entry(2, 0x9000, 5)],
            vec![
                (3, ProcState::Running),
                (4, ProcState::Zombie),
                (5, ProcState::Running),
            ],
        );
        let mut seq = 10;
        let got = derive(&old, &new, true, &mut seq);
        assert_eq!(
            kinds(&got),
            vec![
                (EventKind::Free, 3, 0x1000, 10),
                (EventKind::ExitReclaim, 4, 0x3000, 11),
                (EventKind::Alloc, 5, 0x9000, 12),
            ]
        );
        assert_eq!(seq, 13);
        assert_eq!(
            got[2].slot,
            Some(2),
            "a reused slot: one removal, one addition"
        );
    }

    #[test]
    fn without_a_process_table_owning_nothing_is_an_exit_and_the_kernel_never_exits() {
        let old = snap(vec![entry(0, 0x1000, 3), entry(1, 0x2000, 0)], vec![]);
        let new = snap(vec![], vec![]);
        let mut seq = 0;
        let got = derive(&old, &new, false, &mut seq);
        assert_eq!(
            kinds(&got),
            vec![
                (EventKind::ExitReclaim, 3, 0x1000, 0),
                (EventKind::Free, 0, 0x2000, 1),
            ]
        );
    }

    #[test]
    fn an_owner_that_still_owns_pages_or_still_runs_only_freed() {
        let old = snap(vec![entry(0, 0x1000, 3), entry(1, 0x2000, 3)], vec![]);
        let new = snap(vec![entry(1, 0x2000, 3)], vec![]);
        let got = derive(&old, &new, false, &mut 0);
        assert_eq!(got[0].kind, EventKind::Free);

        let old = snap(vec![entry(0, 0x1000, 3)], vec![(3, ProcState::Sleeping)]);
        let new = snap(vec![], vec![(3, ProcState::Sleeping)]);
        let got = derive(&old, &new, true, &mut 0);
        assert_eq!(got[0].kind, EventKind::Free);
    }

    #[test]
    fn half_way_through_a_zombie_s_sweep_what_is_gone_is_reclaimed() {
        let old = snap(
            vec![entry(0, 0x1000, 3), entry(1, 0x2000, 3)],
            vec![(3, ProcState::Zombie)],
        );
        let new = snap(vec![entry(1, 0x2000, 3)], vec![(3, ProcState::Zombie)]);
        let got = derive(&old, &new, true, &mut 0);
        assert_eq!(got[0].kind, EventKind::ExitReclaim);
    }

    #[test]
    fn equal_snapshots_give_no_events() {
        let s = snap(vec![entry(0, 0x1000, 3)], vec![]);
        let mut seq = 7;
        assert!(derive(&s, &s, true, &mut seq).is_empty());
        assert_eq!(seq, 7);
    }
}
