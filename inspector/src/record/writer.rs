//! [`Recorder`]: successive snapshots in, frames out, each written to the file at once (one
//! `write` per frame), so a crash of the inspector loses at most the sample being taken.
//!
//! Contracts: the first frame after `Start` is a keyframe, as is the first after a reboot; once
//! `keyframe_every` passed since the last keyframe, the next sample is one if anything changed
//! since that keyframe (an idle tracker adds no keyframes); an unchanged sample writes nothing unless
//! [`HEARTBEAT`] passed since the last frame (an empty delta, so the recording's end time stays
//! within a second of the truth); a stale sample (`mid_change`) adds nothing but time.

use super::format::{encode_frame, file_header, FrameKind};
use super::player::apply_entry_event;
use super::{DeltaRec, EndRec, KeyframeRec, StartInfo};
use crate::model::{Entry, Header, Process, Snapshot};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// Longest time without a frame while the tracker does not change.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Time between keyframes when the `Start` frame says 0.
pub const DEFAULT_KEYFRAME_EVERY: Duration = Duration::from_secs(5);

/// The state the next delta is taken against.
struct Last {
    header: Header,
    entries: Arc<Vec<Entry>>,
    procs: Vec<Process>,
}

/// See the module doc.
pub struct Recorder<W: Write> {
    out: W,
    keyframe_every: Duration,
    last: Option<Last>,
    last_key_us: u64,
    last_frame_us: u64,
    frames: u64,
    bytes: u64,
    /// A delta was written since the last keyframe (so the next due keyframe is news).
    delta_since_key: bool,
}

impl<W: Write> Recorder<W> {
    /// Writes the file header and the `Start` frame to `out`.
    pub fn new(mut out: W, info: &StartInfo) -> io::Result<Recorder<W>> {
        let payload = serde_json::to_vec(info).map_err(io::Error::other)?;
        let mut first = file_header().to_vec();
        first.extend(encode_frame(FrameKind::Start, 0, &payload));
        out.write_all(&first)?;
        out.flush()?;
        Ok(Recorder {
            out,
            keyframe_every: match info.keyframe_every_ms {
                0 => DEFAULT_KEYFRAME_EVERY,
                ms => Duration::from_millis(ms),
            },
            last: None,
            last_key_us: 0,
            last_frame_us: 0,
            frames: 0,
            bytes: first.len() as u64,
            delta_since_key: false,
        })
    }

    /// Records `snap`, taken `at` after the recording began (times must not go backwards).
    pub fn push(&mut self, snap: &Snapshot, at: Duration) -> io::Result<()> {
        let t_us = (at.as_micros() as u64).max(self.last_frame_us);
        let key_due =
            t_us.saturating_sub(self.last_key_us) >= self.keyframe_every.as_micros() as u64;
        match &self.last {
            None => self.keyframe(snap, t_us),
            Some(_) if snap.rebooted => self.keyframe(snap, t_us),
            Some(_) if snap.mid_change => self.heartbeat(t_us),
            Some(last) => {
                let delta = delta(last, snap);
                if key_due && (self.delta_since_key || delta != DeltaRec::default()) {
                    self.keyframe(snap, t_us)
                } else if delta == DeltaRec::default() {
                    self.heartbeat(t_us)
                } else {
                    self.write_delta(&delta, snap, t_us)
                }
            }
        }
    }

    /// Writes the `End` frame (at `at`) and flushes; the recorder is spent.
    pub fn finish(mut self, at: Duration) -> io::Result<W> {
        let t_us = (at.as_micros() as u64).max(self.last_frame_us);
        let end = EndRec {
            frames: self.frames,
        };
        self.write(FrameKind::End, t_us, &serde_json::to_vec(&end)?)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Keyframes and deltas written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn keyframe(&mut self, snap: &Snapshot, t_us: u64) -> io::Result<()> {
        let rec = KeyframeRec {
            header: snap.header.clone(),
            entries: snap.entries.to_vec(),
            procs: snap.procs.clone(),
            events: snap.events.clone(),
            missed_events: snap.missed_events,
            rebooted: snap.rebooted,
        };
        self.write(FrameKind::Keyframe, t_us, &serde_json::to_vec(&rec)?)?;
        self.frames += 1;
        self.last_key_us = t_us;
        self.delta_since_key = false;
        self.remember(snap);
        Ok(())
    }

    fn write_delta(&mut self, delta: &DeltaRec, snap: &Snapshot, t_us: u64) -> io::Result<()> {
        self.write(FrameKind::Delta, t_us, &serde_json::to_vec(delta)?)?;
        self.frames += 1;
        self.delta_since_key = true;
        self.remember(snap);
        Ok(())
    }

    /// An empty delta if nothing was written for [`HEARTBEAT`].
    fn heartbeat(&mut self, t_us: u64) -> io::Result<()> {
        if t_us.saturating_sub(self.last_frame_us) < HEARTBEAT.as_micros() as u64 {
            return Ok(());
        }
        self.write(FrameKind::Delta, t_us, b"{}")?;
        self.frames += 1;
        Ok(())
    }

    fn remember(&mut self, snap: &Snapshot) {
        self.last = Some(Last {
            header: snap.header.clone(),
            entries: snap.entries.clone(),
            procs: snap.procs.clone(),
        });
    }

    fn write(&mut self, kind: FrameKind, t_us: u64, payload: &[u8]) -> io::Result<()> {
        let frame = encode_frame(kind, t_us, payload);
        self.out.write_all(&frame)?;
        self.out.flush()?;
        self.bytes += frame.len() as u64;
        self.last_frame_us = t_us;
        Ok(())
    }
}

/// What `snap` changed since `last`; entries compared by slot (both lists are in slot order).
fn delta(last: &Last, snap: &Snapshot) -> DeltaRec {
    let (mut removed, mut set) = (Vec::new(), Vec::new());
    let mut derived = Arc::clone(&last.entries);
    for ev in &snap.events {
        apply_entry_event(Arc::make_mut(&mut derived), ev);
    }
    if !Arc::ptr_eq(&derived, &snap.entries) {
        let (old, new) = (by_slot(&derived), by_slot(&snap.entries));
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) if o.slot == n.slot => {
                    if o != n {
                        set.push(n.clone());
                    }
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(n)) if o.slot < n.slot => {
                    removed.push(o.slot);
                    i += 1;
                }
                (Some(o), None) => {
                    removed.push(o.slot);
                    i += 1;
                }
                (_, Some(n)) => {
                    set.push(n.clone());
                    j += 1;
                }
                (None, None) => unreachable!("loop condition"),
            }
        }
    }
    DeltaRec {
        header: header_changes(&last.header, &snap.header),
        removed,
        set,
        procs: (snap.procs != last.procs).then(|| snap.procs.clone()),
        events: snap.events.clone(),
        missed_events: snap.missed_events,
    }
}

/// `entries` in slot order (as snapshots keep them; sorted here only if they are not).
fn by_slot(entries: &[Entry]) -> std::borrow::Cow<'_, [Entry]> {
    if entries.windows(2).all(|w| w[0].slot < w[1].slot) {
        std::borrow::Cow::Borrowed(entries)
    } else {
        let mut v = entries.to_vec();
        v.sort_by_key(|e| e.slot);
        v.dedup_by_key(|e| e.slot);
        std::borrow::Cow::Owned(v)
    }
}

/// The fields of `new` that differ from `old`, by name.
fn header_changes(old: &Header, new: &Header) -> serde_json::Map<String, serde_json::Value> {
    let (serde_json::Value::Object(old), serde_json::Value::Object(new)) = (
        serde_json::to_value(old).expect("a header serializes"),
        serde_json::to_value(new).expect("a header serializes"),
    ) else {
        unreachable!("a struct serializes to an object")
    };
    new.into_iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .collect()
}
