//! Reading a recording back: [`Recording`] (the file decoded up to any damage, with what a
//! seek needs: frame times, keyframe positions, event counts) and [`Player`] (the state at any
//! frame or event).
//!
//! Positions ([`Pos`]): a frame's state is exactly what was recorded at that sample. Between
//! two frames, the state after each single event is derived from the earlier frame by applying
//! that frame's successor's events one by one (an `Alloc` fills its slot, a `Free` or
//! `ExitReclaim` empties it; the header's counts follow): so one can step one event at a time
//! where the recording only sampled. Every position is a pure function of the file, so stepping
//! backwards reaches the same states as stepping forwards.
//!
//! Cost: a frame's state is rebuilt from the nearest keyframe before it (at most one keyframe
//! interval of deltas); moving forward from the last state asked for applies only the deltas
//! in between.

use super::format::{check_file_header, scan, Damage, FrameKind};
use super::{DeltaRec, EndRec, KeyframeRec, RecordError, StartInfo};
use crate::model::{Entry, Event, EventKind, Header, Process, Snapshot};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What one frame changes.
#[derive(Debug)]
enum Body {
    Key {
        header: Header,
        entries: Arc<Vec<Entry>>,
        procs: Vec<Process>,
    },
    Delta(DeltaRec),
}

#[derive(Debug)]
struct Frame {
    t_us: u64,
    events: Vec<Event>,
    missed_events: u64,
    rebooted: bool,
    body: Body,
}

/// A recording, decoded up to its end or its first damage. See the module doc.
#[derive(Debug)]
pub struct Recording {
    info: StartInfo,
    frames: Vec<Frame>,
    /// Indexes of the keyframes, ascending (the first frame is one).
    keyframes: Vec<usize>,
    /// `ev_before[i]`: events in frames `0..i`; one more element than `frames`.
    ev_before: Vec<usize>,
    /// `missed_before[i]`: events missed by frames `0..=i`.
    missed_upto: Vec<u64>,
    damage: Option<Damage>,
    end_us: Option<u64>,
}

impl Recording {
    /// Reads and decodes the file at `path`. Errors: unreadable, not a recording, or no
    /// keyframe before the damage; damage after that is kept in [`damage`](Self::damage).
    pub fn open(path: &Path) -> Result<Recording, RecordError> {
        let bytes = std::fs::read(path).map_err(|source| RecordError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Recording::from_bytes(&bytes, &path.display().to_string())
    }

    /// Decodes a whole recording held in memory; `name` names it in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Recording, RecordError> {
        check_file_header(bytes).map_err(|reason| RecordError::NotARecording {
            path: name.to_string(),
            reason,
        })?;
        let (raw, mut damage) = scan(bytes);
        let mut rec = Recording {
            info: StartInfo::default(),
            frames: Vec::new(),
            keyframes: Vec::new(),
            ev_before: vec![0],
            missed_upto: Vec::new(),
            damage: None,
            end_us: None,
        };
        for (i, f) in raw.into_iter().enumerate() {
            let broken = |reason: String| {
                Some(Damage {
                    offset: f.offset,
                    reason,
                })
            };
            let decoded = match (i, f.kind) {
                (0, FrameKind::Start) => serde_json::from_slice::<StartInfo>(&f.payload)
                    .map(|info| rec.info = info)
                    .map_err(|e| format!("the Start frame does not decode: {e}")),
                (0, _) => Err("the first frame is not a Start frame".to_string()),
                (_, FrameKind::Start) => Err("a second Start frame".to_string()),
                (_, FrameKind::End) => {
                    let end: EndRec = serde_json::from_slice(&f.payload).unwrap_or_default();
                    let _ = end.frames;
                    rec.end_us = Some(f.t_us);
                    break;
                }
                (_, FrameKind::Keyframe) => serde_json::from_slice::<KeyframeRec>(&f.payload)
                    .map(|k| rec.push_keyframe(f.t_us, k))
                    .map_err(|e| format!("a keyframe does not decode: {e}")),
                (_, FrameKind::Delta) if rec.frames.is_empty() => {
                    Err("a delta before the first keyframe".to_string())
                }
                (_, FrameKind::Delta) => serde_json::from_slice::<DeltaRec>(&f.payload)
                    .map(|d| rec.push_delta(f.t_us, d))
                    .map_err(|e| format!("a delta does not decode: {e}")),
            };
            if let Err(reason) = decoded {
                damage = broken(reason);
                break;
            }
        }
        if rec.frames.is_empty() {
            return Err(RecordError::Empty {
                path: name.to_string(),
                damage,
            });
        }
        rec.damage = damage;
        Ok(rec)
    }

    fn push_frame(&mut self, frame: Frame) {
        self.ev_before
            .push(self.ev_before.last().copied().unwrap_or(0) + frame.events.len());
        let missed = self.missed_upto.last().copied().unwrap_or(0);
        self.missed_upto.push(missed + frame.missed_events);
        self.frames.push(frame);
    }

    fn push_keyframe(&mut self, t_us: u64, k: KeyframeRec) {
        self.keyframes.push(self.frames.len());
        self.push_frame(Frame {
            t_us,
            events: k.events,
            missed_events: k.missed_events,
            rebooted: k.rebooted,
            body: Body::Key {
                header: k.header,
                entries: Arc::new(k.entries),
                procs: k.procs,
            },
        });
    }

    fn push_delta(&mut self, t_us: u64, mut d: DeltaRec) {
        let events = std::mem::take(&mut d.events);
        let missed_events = d.missed_events;
        self.push_frame(Frame {
            t_us,
            events,
            missed_events,
            rebooted: false,
            body: Body::Delta(d),
        });
    }

    pub fn info(&self) -> &StartInfo {
        &self.info
    }

    /// Where the file stops being readable, if it does (the recording replays up to there).
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// True when the recorder stopped cleanly (an `End` frame).
    pub fn ended_cleanly(&self) -> bool {
        self.end_us.is_some()
    }

    /// Frames (samples) in the recording: at least one.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Never true: a recording without a frame does not open.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Indexes of the keyframes.
    pub fn keyframes(&self) -> &[usize] {
        &self.keyframes
    }

    /// How long the recording lasts: its `End` frame's time, else its last frame's.
    pub fn duration(&self) -> Duration {
        let last = self.frames.last().map_or(0, |f| f.t_us);
        Duration::from_micros(self.end_us.unwrap_or(last).max(last))
    }

    /// When frame `i` was sampled, from the recording's start.
    pub fn frame_time(&self, i: usize) -> Duration {
        Duration::from_micros(self.frames[i.min(self.frames.len() - 1)].t_us)
    }

    /// The last frame sampled at or before `t` (the first frame for a `t` before it).
    pub fn frame_at(&self, t: Duration) -> usize {
        let t = t.as_micros() as u64;
        self.frames
            .partition_point(|f| f.t_us <= t)
            .saturating_sub(1)
    }

    /// Events in the whole recording (the first frame's are those the kernel's ring still
    /// held when the recording began).
    pub fn events_total(&self) -> usize {
        *self.ev_before.last().expect("one more than frames")
    }

    /// The events recorded with frame `i` (those since the frame before).
    pub fn frame_events(&self, i: usize) -> &[Event] {
        &self.frames[i].events
    }

    /// The keyframe at or before frame `i`.
    fn keyframe_before(&self, i: usize) -> usize {
        let k = self.keyframes.partition_point(|&k| k <= i);
        self.keyframes[k.saturating_sub(1)]
    }
}

/// A position in a recording: frame `frame`'s state (`partial` None), or the state after the
/// first `partial` (1 ≤ partial < its count) of frame `frame`'s events, applied to the frame
/// before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub frame: usize,
    pub partial: Option<usize>,
}

impl Pos {
    /// Frame `frame`'s recorded state.
    pub fn frame(frame: usize) -> Pos {
        Pos {
            frame,
            partial: None,
        }
    }
}

/// The tracker's state at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub header: Header,
    pub entries: Arc<Vec<Entry>>,
    pub procs: Vec<Process>,
}

/// Partial states kept per frame: one every this many events, so a step (either way) applies
/// at most this many events.
const CHECKPOINT_EVERY: usize = 32;

/// Rebuilds states of a [`Recording`]; keeps the last frame state it built, and checkpoints
/// of the partial states of the last frame stepped through. See the module doc.
pub struct Player {
    rec: Arc<Recording>,
    cache: Option<(usize, State)>,
    /// (frame, states after 0, 32, 64, … of its events applied to the frame before).
    checkpoints: Option<(usize, Vec<State>)>,
}

impl Player {
    pub fn new(rec: Arc<Recording>) -> Player {
        Player {
            rec,
            cache: None,
            checkpoints: None,
        }
    }

    pub fn recording(&self) -> &Arc<Recording> {
        &self.rec
    }

    /// The last frame's position.
    pub fn end(&self) -> Pos {
        Pos::frame(self.rec.len() - 1)
    }

    /// The position of the last frame at or before `t`.
    pub fn at_time(&self, t: Duration) -> Pos {
        Pos::frame(self.rec.frame_at(t))
    }

    /// When `pos` was sampled (a partial position: the time of the frame it leads to).
    pub fn time(&self, pos: Pos) -> Duration {
        self.rec.frame_time(pos.frame)
    }

    /// Events applied at `pos`, counted from the recording's first event.
    pub fn event_count(&self, pos: Pos) -> usize {
        let f = pos.frame.min(self.rec.len() - 1);
        let m = self.rec.frames[f].events.len();
        self.rec.ev_before[f] + pos.partial.map_or(m, |j| j.min(m))
    }

    /// The earliest position with `count` events applied (clamped to what the recording
    /// holds: never fewer than the first frame's).
    pub fn at_event_count(&self, count: usize) -> Pos {
        let r = &self.rec;
        let count = count.clamp(r.ev_before[1], r.events_total());
        // The first frame whose events end at or after `count`.
        let f = r.ev_before[1..].partition_point(|&end| end < count);
        let (start, end) = (r.ev_before[f], r.ev_before[f + 1]);
        if count == end {
            Pos::frame(f)
        } else {
            Pos {
                frame: f,
                partial: Some(count - start),
            }
        }
    }

    /// The position `by` events after (or, negative, before) `pos`; `pos` itself when no
    /// event is left that way.
    pub fn step(&self, pos: Pos, by: i64) -> Pos {
        let now = self.event_count(pos);
        let want = (now as i64).saturating_add(by).max(0) as usize;
        let next = self.at_event_count(want);
        if self.event_count(next) == now {
            pos
        } else {
            next
        }
    }

    /// The state at `pos`.
    pub fn state(&mut self, pos: Pos) -> State {
        let f = pos.frame.min(self.rec.len() - 1);
        match pos.partial {
            Some(j) if f > 0 && j < self.rec.frames[f].events.len() => self.partial_state(f, j),
            _ => self.frame_state(f),
        }
    }

    /// Frame `f - 1`'s state with the first `j` events of frame `f` applied, from the nearest
    /// checkpoint at or before `j`.
    fn partial_state(&mut self, f: usize, j: usize) -> State {
        let rec = Arc::clone(&self.rec);
        let mut points = match self.checkpoints.take() {
            Some((cf, points)) if cf == f => points,
            _ => {
                let mut base = self.frame_state(f - 1);
                if let Body::Delta(DeltaRec {
                    procs: Some(next), ..
                }) = &rec.frames[f].body
                {
                    add_new_procs(&mut base.procs, next);
                }
                vec![base]
            }
        };
        let from = (j / CHECKPOINT_EVERY).min(points.len() - 1);
        let mut st = points[from].clone();
        for (i, ev) in rec.frames[f].events[from * CHECKPOINT_EVERY..j]
            .iter()
            .enumerate()
        {
            apply_event(&mut st, ev);
            let done = from * CHECKPOINT_EVERY + i + 1;
            if done.is_multiple_of(CHECKPOINT_EVERY) && done / CHECKPOINT_EVERY == points.len() {
                points.push(st.clone());
            }
        }
        self.checkpoints = Some((f, points));
        st
    }

    /// Frame `f`'s state derived from the frame before by its events alone (what stepping
    /// event by event reaches), without what the recorder saw beyond them. Equal to the
    /// recorded state whenever the events explain the change (no event missed); for checks.
    pub fn derive_from_events(&mut self, f: usize) -> State {
        let f = f.clamp(1, self.rec.len() - 1);
        let mut st = self.frame_state(f - 1);
        let rec = Arc::clone(&self.rec);
        for ev in &rec.frames[f].events {
            apply_event(&mut st, ev);
        }
        st
    }

    /// True when frame `f` is a delta whose events were all read (none missed).
    pub fn is_complete_delta(&self, f: usize) -> bool {
        let frame = &self.rec.frames[f.min(self.rec.len() - 1)];
        matches!(frame.body, Body::Delta(_)) && frame.missed_events == 0
    }

    /// The snapshot at `pos`, as a reader that started there would see it: its `events` are
    /// the last `window` events up to `pos`, `missed_events` the events the recording missed
    /// up to its frame.
    pub fn snapshot(&mut self, pos: Pos, window: usize) -> Snapshot {
        let st = self.state(pos);
        let f = pos.frame.min(self.rec.len() - 1);
        let count = self.event_count(pos);
        let mut snap = Snapshot {
            header: st.header,
            entries: st.entries,
            procs: st.procs,
            events: self.events_before(count, window),
            ..Snapshot::default()
        };
        snap.missed_events = self.rec.missed_upto[f];
        snap.table_read = true;
        snap.rebooted = pos.partial.is_none() && self.rec.frames[f].rebooted;
        snap.read_path = self.rec.info.read_path;
        snap
    }

    /// The last `window` events before event number `count`, oldest first.
    pub fn events_before(&self, count: usize, window: usize) -> Vec<Event> {
        let r = &self.rec;
        let from = count.saturating_sub(window);
        let mut out = Vec::with_capacity(count - from);
        // The frame holding event `from`.
        let mut f = r.ev_before[1..].partition_point(|&end| end <= from);
        while f < r.len() && r.ev_before[f] < count {
            let (start, evs) = (r.ev_before[f], &r.frames[f].events);
            let lo = from.saturating_sub(start);
            let hi = (count - start).min(evs.len());
            out.extend_from_slice(&evs[lo.min(hi)..hi]);
            f += 1;
        }
        out
    }

    /// Frame `f`'s recorded state: from the cache when it is at or before `f` and after the
    /// nearest keyframe, else from that keyframe.
    fn frame_state(&mut self, f: usize) -> State {
        let k = self.rec.keyframe_before(f);
        let (mut at, mut st) = match self.cache.take() {
            Some((c, st)) if c >= k && c <= f => (c, st),
            _ => {
                let Body::Key {
                    header,
                    entries,
                    procs,
                } = &self.rec.frames[k].body
                else {
                    unreachable!("keyframes index keyframes")
                };
                let st = State {
                    header: header.clone(),
                    entries: Arc::clone(entries),
                    procs: procs.clone(),
                };
                (k, st)
            }
        };
        while at < f {
            at += 1;
            let frame = &self.rec.frames[at];
            match &frame.body {
                Body::Delta(d) => apply_delta(&mut st, d, &frame.events),
                Body::Key { .. } => unreachable!("no keyframe between k and f"),
            }
        }
        self.cache = Some((f, st.clone()));
        st
    }
}

fn apply_delta(st: &mut State, d: &DeltaRec, events: &[Event]) {
    if !d.header.is_empty() {
        let mut h = serde_json::to_value(&st.header).expect("a header serializes");
        if let Some(obj) = h.as_object_mut() {
            obj.extend(d.header.clone());
        }
        // Fields this inspector does not know are ignored; a checksum-tested frame holds
        // values of the right types.
        st.header = serde_json::from_value(h).unwrap_or_else(|_| st.header.clone());
    }
    if !events.is_empty() {
        let entries = Arc::make_mut(&mut st.entries);
        for ev in events {
            apply_entry_event(entries, ev);
        }
    }
    if !d.removed.is_empty() || !d.set.is_empty() {
        let entries = Arc::make_mut(&mut st.entries);
        for slot in &d.removed {
            if let Ok(i) = entries.binary_search_by_key(slot, |e| e.slot) {
                entries.remove(i);
            }
        }
        for e in &d.set {
            put(entries, e.clone());
        }
    }
    if let Some(p) = &d.procs {
        st.procs = p.clone();
    }
}

/// Inserts `e` at its slot, in slot order, replacing what was there.
fn put(entries: &mut Vec<Entry>, e: Entry) {
    match entries.binary_search_by_key(&e.slot, |x| x.slot) {
        Ok(i) => entries[i] = e,
        Err(i) => entries.insert(i, e),
    }
}

/// Process records of `next` whose pid `procs` lacks (a process that started between two
/// frames owns pages before the later frame's table shows it).
fn add_new_procs(procs: &mut Vec<Process>, next: &[Process]) {
    for p in next {
        if !procs.iter().any(|q| q.pid == p.pid) {
            procs.push(p.clone());
        }
    }
    procs.sort_by_key(|p| p.pid);
}

/// The entry an `Alloc` event creates, with every field the event shares with [`Entry`]
/// (through serde, so fields both types gain later come along).
fn entry_from_event(ev: &Event, slot: usize) -> Option<Entry> {
    let mut v = serde_json::to_value(ev).ok()?;
    let obj = v.as_object_mut()?;
    obj.remove("seq");
    obj.remove("kind");
    obj.insert("slot".into(), slot.into());
    serde_json::from_value(v).ok()
}

/// What one event does to the entries: an `Alloc` with a slot fills it, a `Free` or
/// `ExitReclaim` empties its slot (or, without one, the entry at its pa). Returns the entry
/// added or removed. The recorder and the player both use it, so a delta replays exactly.
pub(super) fn apply_entry_event(entries: &mut Vec<Entry>, ev: &Event) -> Option<Entry> {
    match ev.kind {
        EventKind::Alloc => {
            let e = ev.slot.and_then(|s| entry_from_event(ev, s))?;
            put(entries, e.clone());
            Some(e)
        }
        EventKind::Free | EventKind::ExitReclaim => {
            let i = match ev.slot {
                Some(s) => entries.binary_search_by_key(&s, |e| e.slot).ok(),
                None => entries
                    .iter()
                    .position(|e| e.pa == ev.pa && e.npages == ev.npages),
            }?;
            Some(entries.remove(i))
        }
        _ => None,
    }
}

/// One event applied to a state between two frames: its entry, and the header's counts.
fn apply_event(st: &mut State, ev: &Event) {
    let changed = apply_entry_event(Arc::make_mut(&mut st.entries), ev);
    let h = &mut st.header;
    h.event_head = h.event_head.max(ev.seq + 1);
    match (&ev.kind, changed) {
        (EventKind::Alloc, Some(e)) => {
            h.count += 1;
            h.total_allocs += 1;
            h.tracked_pages += e.npages;
            h.free_pages = h.free_pages.saturating_sub(e.npages);
            h.high_water = h.high_water.max(e.slot as u64 + 1);
        }
        (EventKind::Free | EventKind::ExitReclaim, Some(e)) => {
            h.count = h.count.saturating_sub(1);
            h.tracked_pages = h.tracked_pages.saturating_sub(e.npages);
            h.free_pages += e.npages;
            if ev.kind == EventKind::Free {
                h.total_frees += 1;
            } else {
                h.reclaimed_allocs += 1;
                h.reclaimed_pages += e.npages;
            }
        }
        (EventKind::AllocFailed, _) => h.failed_allocs += 1,
        (EventKind::InvalidFree, _) => h.invalid_frees += 1,
        _ => {}
    }
}
