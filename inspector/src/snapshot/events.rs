//! Reading the event ring (`alloc_events`, docs/tracker-abi.md): the events since the last
//! snapshot's `event_head`, at most a ring's worth (the rest counted as missed), decoded by
//! field name with the record's tag and sites taken from the last two seen when they repeat.

use super::{checked_span, read_into, readers, str_len_key, Sampler, SnapshotError, NO_SLOT};
use crate::dwarf::{FieldLayout, StructLayout};
use crate::model::{Event, EventKind};
use crate::target::GuestMemory;
use std::sync::Arc;

impl Sampler {
    /// Events with sequence numbers from the last snapshot's head up to `head` (at most a
    /// ring's worth; the rest are counted as missed).
    pub(super) fn read_events<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        head: u64,
        limit: u64,
    ) -> Result<(Vec<Event>, u64), SnapshotError> {
        let layout = std::sync::Arc::clone(&self.layout);
        let Some(ring) = layout.events.as_ref().filter(|r| r.array.len > 0) else {
            return Ok((Vec::new(), 0));
        };
        let EventRange { from, missed } = self.event_range(ring.array.len, head);
        if from == head {
            return Ok((Vec::new(), missed));
        }
        let mut events = Vec::with_capacity((head - from) as usize);
        let fields = EventFields::of(&ring.record);
        let mut recent = RecentOfEvents {
            tags: readers::Recent::new(),
            sites: readers::Recent::new(),
        };
        for (seq, start, end) in ring_runs(ring.array.len, from, head) {
            let (addr, len) = checked_span(ring, start, end, "alloc_events", limit)?;
            let mut bytes = std::mem::take(&mut self.buf);
            read_into(t, &mut bytes, addr, len)?;
            for i in 0..end - start {
                // `bytes` starts at element `start`, so index it from 0.
                let Some(rec) = ring.array.element_bytes(&bytes, i) else {
                    break;
                };
                events.push(self.decode_event(t, &fields, rec, seq + i, &mut recent)?);
            }
            self.buf = bytes;
        }
        Ok((events, missed))
    }

    /// The events a read up to `head` takes: from the next one not yet read (all still in
    /// the ring for a first read), and how many were overwritten before they could be read.
    pub(super) fn event_range(&self, ring_len: u64, head: u64) -> EventRange {
        let oldest_kept = head.saturating_sub(ring_len);
        let from = self.next_event.unwrap_or(oldest_kept).min(head);
        EventRange {
            from: from.max(oldest_kept),
            missed: oldest_kept.saturating_sub(from),
        }
    }

    fn decode_event<T: GuestMemory + ?Sized>(
        &mut self,
        t: &mut T,
        f: &EventFields,
        rec: &[u8],
        expected_seq: u64,
        recent: &mut RecentOfEvents,
    ) -> Result<Event, SnapshotError> {
        let get = |f: Option<&FieldLayout>| f.and_then(|f| f.read_u64(rec)).unwrap_or(0);
        let kind = match f.kind {
            Some(f) => match f.enum_name(rec) {
                Some(name) => EventKind::from_name(name),
                None => EventKind::Other(f.read_u64(rec).unwrap_or(0).to_string()),
            },
            None => EventKind::Other("?".into()),
        };
        let tag = match f.tag {
            Some(f) => match f.read_str(rec) {
                Some(s) => recent
                    .tags
                    .get_or((s.ptr, str_len_key(&s)), || self.string(t, f, rec))?,
                None => self.string(t, f, rec)?,
            },
            None => Arc::from(""),
        };
        let seq = f.seq.and_then(|f| f.read_u64(rec)).unwrap_or(expected_seq);
        let slot = f
            .slot
            .and_then(|f| f.read_u64(rec))
            .filter(|&s| s != NO_SLOT && s < self.layout.table.array.len)
            .map(|s| s as usize);
        let (site, user_site) = match self.event_sites.clone() {
            Some(fields) => {
                let int = |f: Option<&FieldLayout>| f.and_then(|f| f.read_u64(rec)).unwrap_or(0);
                let program = fields.user_program.as_ref().and_then(|p| p.read_str(rec));
                let key = (
                    int(Some(&fields.site)),
                    int(fields.user_site.as_ref()),
                    int(fields.owner.as_ref()),
                    program.map_or((0, 0), |p| (p.ptr, str_len_key(&p))),
                );
                recent.sites.get_or(key, || self.sites(t, &fields, rec))?
            }
            None => (None, None),
        };
        Ok(Event {
            seq,
            kind,
            owner: get(f.owner) as u32,
            slot,
            pa: get(f.pa),
            npages: get(f.npages),
            tag,
            time: get(f.time),
            site,
            user_site,
        })
    }
}

/// The recent tags and sites of one read's events (see [`readers::Recent`]).
struct RecentOfEvents {
    tags: readers::Recent<(u64, u64), Arc<str>>,
    sites: readers::Recent<(u64, u64, u64, (u64, u64)), crate::sites::Named>,
}

/// See [`Sampler::event_range`].
pub(super) struct EventRange {
    pub from: u64,
    pub missed: u64,
}

/// The ring's elements holding sequence numbers `from..head` (at most `ring_len` of them), as
/// at most two contiguous runs `(first seq, start element, end element)`: up to the ring's
/// end, then from its start.
pub(super) fn ring_runs(ring_len: u64, from: u64, head: u64) -> Vec<(u64, u64, u64)> {
    let mut runs = Vec::new();
    let mut seq = from;
    while seq < head && ring_len > 0 {
        let start = seq % ring_len;
        let end = (start + (head - seq)).min(ring_len);
        runs.push((seq, start, end));
        seq += end - start;
    }
    runs
}

/// The event record's fields, looked up by name once per read rather than once per event.
struct EventFields<'l> {
    kind: Option<&'l FieldLayout>,
    tag: Option<&'l FieldLayout>,
    seq: Option<&'l FieldLayout>,
    slot: Option<&'l FieldLayout>,
    owner: Option<&'l FieldLayout>,
    pa: Option<&'l FieldLayout>,
    npages: Option<&'l FieldLayout>,
    time: Option<&'l FieldLayout>,
}

impl<'l> EventFields<'l> {
    fn of(r: &'l StructLayout) -> EventFields<'l> {
        EventFields {
            kind: r.field("kind"),
            tag: r.field("tag"),
            seq: r.field("seq"),
            slot: r.field("slot"),
            owner: r.field("owner"),
            pa: r.field("pa"),
            npages: r.field("npages"),
            time: r.field("time"),
        }
    }
}
