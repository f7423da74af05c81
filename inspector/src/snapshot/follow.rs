//! The fast path of a read whose generation moved: the previous snapshot's entries with the
//! ring's events applied, checked against the new header, instead of reading the table.

use crate::model::{Entry, Event, EventKind, Header, Snapshot};

/// The previous snapshot's entries with `events` (all events since it, in order) applied, or
/// None if the events do not carry slots or do not account exactly for the new state
/// (`count` entries holding `tracked_pages` pages): then the caller reads the table.
pub(super) fn follow_events(
    previous: &Snapshot,
    events: &[Event],
    count: Option<u64>,
    header: &Header,
) -> Option<Vec<Entry>> {
    // In slot order, as the table holds them; a clone shares the tag strings.
    let mut entries: Vec<Entry> = previous.entries.to_vec();
    let mut seq = previous.header.event_head;
    for ev in events {
        if ev.seq != seq {
            return None;
        }
        seq += 1;
        match ev.kind {
            EventKind::Alloc => {
                let slot = ev.slot?;
                let Err(at) = entries.binary_search_by_key(&slot, |e| e.slot) else {
                    return None; // the slot was not free: we lost track
                };
                let entry = Entry {
                    slot,
                    pa: ev.pa,
                    npages: ev.npages,
                    owner: ev.owner,
                    tag: ev.tag.clone(),
                    time: ev.time,
                    site: ev.site.clone(),
                    user_site: ev.user_site.clone(),
                };
                entries.insert(at, entry);
            }
            EventKind::Free | EventKind::ExitReclaim => {
                let at = entries.binary_search_by_key(&ev.slot?, |e| e.slot).ok()?;
                if entries.remove(at).pa != ev.pa {
                    return None;
                }
            }
            EventKind::AllocFailed | EventKind::InvalidFree => {}
            EventKind::Other(_) => return None,
        }
    }
    let pages: u64 = entries.iter().map(|e| e.npages).sum();
    let consistent = seq == header.event_head
        && count.is_none_or(|c| c == entries.len() as u64)
        && pages == header.tracked_pages;
    consistent.then_some(entries)
}

#[cfg(test)]
mod tests {
    //! `follow_events`: the fast path that applies the ring's events to the previous entries
    //! must refuse (None: read the table) whenever the events do not account exactly for the
    //! change, and take every kind of event it knows.
    use super::follow_events;
    use crate::model::{Entry, Event, EventKind, Header, Snapshot};

    fn entry(slot: usize, pa: u64, npages: u64, owner: u32) -> Entry {
        Entry {
            slot,
            pa,
            npages,
            owner,
            tag: "t".into(),
            time: 0,
            site: None,
            user_site: None,
        }
    }

    fn event(seq: u64, kind: EventKind, slot: usize, pa: u64, npages: u64) -> Event {
        Event {
            seq,
            kind,
            owner: 7,
            slot: Some(slot),
            pa,
            npages,
            tag: "t".into(),
            time: 0,
            site: None,
            user_site: None,
        }
    }

    /// Slots 0 and 1 live (3 pages), events up to 10.
    fn previous() -> Snapshot {
        Snapshot {
            header: Header {
                event_head: 10,
                tracked_pages: 3,
                ..Header::default()
            },
            entries: std::sync::Arc::new(vec![
                entry(0, 0x8040_0000, 1, 7),
                entry(1, 0x8041_0000, 2, 7),
            ]),
            ..Snapshot::default()
        }
    }

    fn header(event_head: u64, tracked_pages: u64) -> Header {
        Header {
            event_head,
            tracked_pages,
            ..Header::default()
        }
    }

    #[test]
    fn alloc_free_and_exit_reclaim_are_all_followed() {
        let events = [
            event(10, EventKind::Alloc, 2, 0x8050_0000, 4),
            event(11, EventKind::Free, 0, 0x8040_0000, 1),
            event(12, EventKind::ExitReclaim, 1, 0x8041_0000, 2),
            event(13, EventKind::InvalidFree, 9, 0x1000, 1),
        ];
        let got = follow_events(&previous(), &events, Some(1), &header(14, 4))
            .expect("every event accounted for: the fast path");
        assert_eq!(got, vec![entry(2, 0x8050_0000, 4, 7)]);
    }

    #[test]
    fn a_record_with_the_wrong_sequence_number_falls_back_to_the_table() {
        // The record in the ring is not the one expected next (overwritten, or stale): even
        // when everything else adds up, it is not trusted.
        let events = [event(11, EventKind::Free, 0, 0x8040_0000, 1)];
        assert_eq!(
            follow_events(&previous(), &events, Some(1), &header(11, 2)),
            None
        );
    }

    #[test]
    fn a_free_of_another_address_in_the_slot_falls_back() {
        let events = [event(10, EventKind::Free, 0, 0x8099_0000, 1)];
        assert_eq!(
            follow_events(&previous(), &events, Some(1), &header(11, 2)),
            None
        );
    }

    #[test]
    fn an_alloc_into_an_occupied_slot_falls_back() {
        // Count and pages are made to match, so only the occupied-slot check can refuse.
        let events = [
            event(10, EventKind::Alloc, 1, 0x8060_0000, 2),
            event(11, EventKind::Free, 0, 0x8040_0000, 1),
        ];
        assert_eq!(
            follow_events(&previous(), &events, Some(1), &header(12, 2)),
            None
        );
    }

    #[test]
    fn counts_that_disagree_with_the_header_fall_back() {
        let events = [event(10, EventKind::Free, 0, 0x8040_0000, 1)];
        assert!(follow_events(&previous(), &events, Some(1), &header(11, 2)).is_some());
        assert_eq!(
            follow_events(&previous(), &events, Some(2), &header(11, 2)),
            None,
            "count"
        );
        assert_eq!(
            follow_events(&previous(), &events, Some(1), &header(11, 3)),
            None,
            "pages"
        );
        assert_eq!(
            follow_events(&previous(), &events, Some(1), &header(12, 2)),
            None,
            "head"
        );
    }
}
