//! [`ReplaySource`]: a recording (`inspector record`, `tui --record`) as a [`Source`]: each
//! sample is the recorded tracker at the timeline's position, in the shape of a live
//! snapshot. A [`ReplayControl`], shared with whoever drives the timeline (the TUI's keys, a
//! command's `--at`), plays, pauses, changes speed, steps one event either way and seeks; the
//! next `sample` carries it out.
//!
//! Each snapshot is self-contained, as a reader's first snapshot is: its `events` are the last
//! [`EVENT_WINDOW`] events up to the position, not only those since the previous sample (a
//! consumer replaces what it showed rather than adding to it).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Capabilities, Origin, Source};
use crate::model::Snapshot;
use crate::record::{Player, Pos, Recording};

/// Events each replay snapshot carries (the recent past of its position).
pub const EVENT_WINDOW: usize = 5000;
/// Playback speeds the control steps through.
pub const SPEEDS: [f64; 9] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0];

/// A move of the timeline, carried out at the next sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seek {
    /// To the last frame at or before this time from the recording's start.
    Time(Duration),
    /// This many events forward (negative: back); pauses playback.
    Events(i64),
    /// To the first frame.
    Start,
    /// To the last frame.
    End,
}

/// Where the replay is and how it moves, as the TUI shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub pos: Pos,
    pub playing: bool,
    /// Recorded time per wall time.
    pub speed: f64,
    /// The position's time from the recording's start.
    pub time: Duration,
    pub duration: Duration,
    /// Events applied at the position, and in the whole recording.
    pub event: usize,
    pub events: usize,
    pub frame: usize,
    pub frames: usize,
    /// What ends the recording early, if anything (damage in the file).
    pub damage: Option<String>,
    /// The playback clock: the recorded time playback has reached (between frames too).
    clock: Duration,
    pending: Option<Seek>,
}

/// A handle on a replay's [`Timeline`]; clones share it.
#[derive(Clone, Debug)]
pub struct ReplayControl(Arc<Mutex<Timeline>>);

impl ReplayControl {
    fn lock(&self) -> MutexGuard<'_, Timeline> {
        // A panic elsewhere while holding it leaves plain data: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The timeline now.
    pub fn timeline(&self) -> Timeline {
        self.lock().clone()
    }

    /// Plays (from the start once at the end) or pauses.
    pub fn toggle_play(&self) {
        let mut t = self.lock();
        t.playing = !t.playing;
        if t.playing && t.time >= t.duration {
            t.pending = Some(Seek::Start);
        }
    }

    /// The next speed up (`faster`) or down in [`SPEEDS`].
    pub fn change_speed(&self, faster: bool) {
        let mut t = self.lock();
        let next = if faster {
            SPEEDS.iter().find(|&&s| s > t.speed)
        } else {
            SPEEDS.iter().rev().find(|&&s| s < t.speed)
        };
        if let Some(&s) = next {
            t.speed = s;
        }
    }

    /// Moves the timeline at the next sample (a later seek replaces one not carried out yet,
    /// except that event steps add up).
    pub fn seek(&self, to: Seek) {
        let mut t = self.lock();
        t.pending = match (t.pending, to) {
            (Some(Seek::Events(a)), Seek::Events(b)) => Some(Seek::Events(a.saturating_add(b))),
            _ => Some(to),
        };
        if matches!(to, Seek::Events(_)) {
            t.playing = false;
        }
    }
}

/// See the module doc.
pub struct ReplaySource {
    player: Player,
    control: ReplayControl,
    last_tick: Option<Instant>,
}

impl ReplaySource {
    /// Opens the recording at `path`, positioned at its start, paused.
    pub fn open(path: &Path) -> Result<ReplaySource> {
        let rec = Recording::open(path).context("opening the recording")?;
        Ok(ReplaySource::new(Arc::new(rec)))
    }

    pub fn new(rec: Arc<Recording>) -> ReplaySource {
        let player = Player::new(rec);
        let r = player.recording();
        let timeline = Timeline {
            pos: Pos::frame(0),
            playing: false,
            speed: 1.0,
            time: r.frame_time(0),
            duration: r.duration(),
            event: player.event_count(Pos::frame(0)),
            events: r.events_total(),
            frame: 0,
            frames: r.len(),
            damage: r.damage().map(|d| d.to_string()),
            clock: r.frame_time(0),
            pending: None,
        };
        ReplaySource {
            player,
            control: ReplayControl(Arc::new(Mutex::new(timeline))),
            last_tick: None,
        }
    }

    pub fn control(&self) -> ReplayControl {
        self.control.clone()
    }

    pub fn recording(&self) -> &Arc<Recording> {
        self.player.recording()
    }

    /// Carries out a pending seek, or advances a playing timeline by the wall time since the
    /// last call times the speed; returns the position.
    fn advance(&mut self, now: Instant) -> Pos {
        let elapsed = self.last_tick.map_or(Duration::ZERO, |l| now - l);
        self.last_tick = Some(now);
        let p = &self.player;
        let mut t = self.control.lock();
        if let Some(seek) = t.pending.take() {
            t.pos = match seek {
                Seek::Time(d) => p.at_time(d),
                Seek::Events(n) => p.step(t.pos, n),
                Seek::Start => Pos::frame(0),
                Seek::End => p.end(),
            };
            t.clock = match seek {
                Seek::Time(d) => d.min(t.duration),
                _ => p.time(t.pos),
            };
        } else if t.playing {
            t.clock = (t.clock + elapsed.mul_f64(t.speed)).min(t.duration);
            let next = p.at_time(t.clock);
            // Forward only: a step back or a partial position stays until the clock passes it.
            if next.frame > t.pos.frame || (next.frame == t.pos.frame && t.pos.partial.is_some()) {
                t.pos = next;
            }
            if t.clock >= t.duration {
                t.playing = false;
            }
        }
        t.time = p.time(t.pos);
        t.frame = t.pos.frame;
        t.event = p.event_count(t.pos);
        t.pos
    }
}

impl Source for ReplaySource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            origin: Origin::Recorded,
            halts_guest: false,
            can_debug: false,
        }
    }

    fn sample(&mut self) -> Result<Snapshot> {
        let pos = self.advance(Instant::now());
        Ok(self.player.snapshot(pos, EVENT_WINDOW))
    }

    fn reconnect(&mut self) -> Result<()> {
        Ok(())
    }

    fn detach(&mut self) {}

    fn replay_control(&self) -> Option<ReplayControl> {
        Some(self.control())
    }
}
