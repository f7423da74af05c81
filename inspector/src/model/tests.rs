//! Unit tests of the snapshot model on hand-made snapshots.

use super::*;

pub(crate) fn entry(slot: usize, pa: u64, npages: u64, owner: u32, tag: &str) -> Entry {
    Entry {
        slot,
        pa,
        npages,
        owner,
        tag: tag.into(),
        time: slot as u64,
        site: None,
        user_site: None,
    }
}

pub(crate) fn process(pid: u32, name: &str, state: &str) -> Process {
    Process {
        pid,
        parent: 1,
        name: name.into(),
        state: ProcState::from_name(state),
        hart: None,
    }
}

/// An event of `kind` at `seq` (also its time), at a pa derived from `seq`, without a slot.
pub(crate) fn event(seq: u64, kind: EventKind, owner: u32, npages: u64, tag: &str) -> Event {
    Event {
        seq,
        kind,
        owner,
        slot: None,
        pa: 0x8040_0000 + seq * 0x1000,
        npages,
        tag: tag.into(),
        time: seq,
        site: None,
        user_site: None,
    }
}

/// A small snapshot: kernel, a shell (pid 1) and a leaker (pid 7).
pub(crate) fn sample() -> Snapshot {
    Snapshot {
        header: Header {
            capacity: 8192,
            count: 5,
            generation: 40,
            high_water: 6,
            ram_base: 0x8000_0000,
            ram_pages: 32768,
            free_pages: 32000,
            tracked_pages: 12,
            ..Header::default()
        },
        entries: std::sync::Arc::new(vec![
            entry(0, 0x8030_0000, 4, 0, "kstack"),
            entry(1, 0x8030_4000, 1, 1, "page_table"),
            entry(2, 0x8030_5000, 2, 7, "heap"),
            entry(4, 0x8030_7000, 3, 7, "heap"),
            entry(5, 0x8030_a000, 2, 7, "user_stack"),
        ]),
        procs: vec![
            process(1, "shell", "waiting"),
            process(7, "leak", "sleeping"),
        ],
        ..Snapshot::default()
    }
}

#[test]
fn pids_aggregate_allocs_pages_and_tags() {
    let pids = sample().pids();
    assert_eq!(pids.iter().map(|p| p.pid).collect::<Vec<_>>(), [0, 1, 7]);
    let leak = &pids[2];
    assert_eq!(
        (leak.name.as_str(), leak.state.as_str()),
        ("leak", "sleeping")
    );
    assert_eq!((leak.allocs, leak.pages), (3, 7));
    assert_eq!(
        leak.tags,
        [("heap".to_string(), 5), ("user_stack".to_string(), 2)]
    );
    assert_eq!((pids[0].name.as_str(), pids[0].pages), ("kernel", 4));
}

#[test]
fn pid_without_process_record_is_gone() {
    let mut s = sample();
    s.procs.retain(|p| p.pid != 7);
    let leak = s.pids().into_iter().find(|p| p.pid == 7).unwrap();
    assert_eq!((leak.name.as_str(), leak.state.as_str()), ("?", "gone"));
}

#[test]
fn diff_finds_added_removed_and_pid_changes() {
    let old = sample();
    let mut new = sample();
    std::sync::Arc::make_mut(&mut new.entries).retain(|e| e.owner != 7);
    new.procs.retain(|p| p.pid != 7);
    std::sync::Arc::make_mut(&mut new.entries).push(entry(2, 0x8040_0000, 1, 9, "heap")); // slot 2 reused by pid 9
    new.procs.push(process(9, "hello", "running"));
    let d = diff(&old, &new);
    assert_eq!(
        d.removed.iter().map(|e| e.slot).collect::<Vec<_>>(),
        [2, 4, 5]
    );
    assert_eq!(d.added.len(), 1);
    assert_eq!(d.added[0].owner, 9);
    assert_eq!(d.pids_new, [9]);
    assert_eq!(d.pids_gone, [7]);
    assert!(diff(&new, &new).is_empty());
}

#[test]
fn untracked_used_pages_is_ram_minus_free_minus_tracked() {
    assert_eq!(sample().untracked_used_pages(), 32768 - 32000 - 12);
}
