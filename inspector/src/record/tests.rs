//! The recording format on a simulated tracker whose events carry their slots, as the
//! kernel's do: round trips, seeks from keyframes, single-event steps both ways, and damage
//! (truncation at every byte, a corrupt checksum) that replays up to it.

use super::*;
use crate::model::{EventKind, ProcState, Snapshot};
use std::sync::Arc;
use std::time::Duration;

/// A tiny deterministic tracker: allocations, frees and exit sweeps with slots, a header that
/// follows them as the kernel's does.
struct Sim {
    rng: u64,
    slots: Vec<Option<Entry>>,
    header: Header,
    procs: Vec<Process>,
    events: Vec<Event>,
    next_pa: u64,
    /// Most changes per sample.
    busy: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim {
            rng: seed.wrapping_mul(6364136223846793005).wrapping_add(1),
            slots: vec![None; 64],
            header: Header {
                capacity: 64,
                ram_base: 0x8000_0000,
                ram_pages: 4096,
                free_pages: 4000,
                ..Header::default()
            },
            procs: vec![proc_(1, "shell")],
            events: Vec::new(),
            next_pa: 0x8040_0000,
            busy: 5,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.rng >> 33) % n.max(1)
    }

    fn event(&mut self, kind: EventKind, e: &Entry) {
        let seq = self.header.event_head;
        self.header.event_head += 1;
        self.header.generation += 2;
        self.events.push(Event {
            seq,
            kind,
            owner: e.owner,
            slot: Some(e.slot),
            pa: e.pa,
            npages: e.npages,
            tag: e.tag.clone(),
            time: seq * 10,
            site: e.site.clone(),
            user_site: e.user_site.clone(),
        });
    }

    fn alloc(&mut self, owner: u32) {
        let Some(slot) = self.slots.iter().position(Option::is_none) else {
            return;
        };
        let npages = 1 + self.rand(3);
        let tag = ["heap", "kstack", "user_stack"][self.rand(3) as usize];
        let e = Entry {
            slot,
            pa: self.next_pa,
            npages,
            owner,
            tag: tag.into(),
            time: self.header.event_head * 10,
            // Sites come along in recordings: some allocations have them, user ones both.
            site: (npages > 1).then(|| {
                Arc::new(crate::model::Site {
                    function: "kernel::proc::spawn".into(),
                    file: "kernel/src/proc.rs".into(),
                    line: 40 + npages as u32,
                })
            }),
            user_site: (tag == "heap" && npages > 1).then(|| {
                Arc::new(crate::model::Site {
                    function: "main".into(),
                    file: "kernel/user/src/bin/leak.rs".into(),
                    line: 21,
                })
            }),
        };
        self.next_pa += npages * 0x1000;
        self.header.count += 1;
        self.header.total_allocs += 1;
        self.header.tracked_pages += npages;
        self.header.free_pages -= npages;
        self.header.high_water = self.header.high_water.max(slot as u64 + 1);
        self.event(EventKind::Alloc, &e);
        self.slots[slot] = Some(e);
    }

    fn free(&mut self, slot: usize, reclaim: bool) {
        let Some(e) = self.slots[slot].take() else {
            return;
        };
        self.header.count -= 1;
        self.header.tracked_pages -= e.npages;
        self.header.free_pages += e.npages;
        if reclaim {
            self.header.reclaimed_allocs += 1;
            self.header.reclaimed_pages += e.npages;
            self.event(EventKind::ExitReclaim, &e);
        } else {
            self.header.total_frees += 1;
            self.event(EventKind::Free, &e);
        }
    }

    /// One sample's worth of changes (possibly none), then the snapshot.
    fn sample(&mut self) -> Snapshot {
        let ops = self.rand(self.busy);
        for _ in 0..ops {
            match self.rand(10) {
                0..=4 => {
                    let i = self.rand(self.procs.len() as u64) as usize;
                    let owner = self.procs[i].pid;
                    self.alloc(owner);
                }
                5..=7 => {
                    let used: Vec<usize> = (0..64).filter(|&s| self.slots[s].is_some()).collect();
                    if !used.is_empty() {
                        let s = used[self.rand(used.len() as u64) as usize];
                        self.free(s, false);
                    }
                }
                8 => {
                    let pid = self.procs.iter().map(|p| p.pid).max().unwrap_or(1) + 1;
                    self.procs.push(proc_(pid, "leak"));
                }
                _ if self.procs.len() > 1 => {
                    let p = self.procs.pop().expect("more than one");
                    for s in 0..64 {
                        if self.slots[s].as_ref().is_some_and(|e| e.owner == p.pid) {
                            self.free(s, true);
                        }
                    }
                }
                _ => {}
            }
        }
        Snapshot {
            header: self.header.clone(),
            entries: Arc::new(self.slots.iter().flatten().cloned().collect()),
            procs: self.procs.clone(),
            events: std::mem::take(&mut self.events),
            table_read: true,
            ..Snapshot::default()
        }
    }
}

fn proc_(pid: u32, name: &str) -> Process {
    Process {
        pid,
        parent: 1,
        name: name.into(),
        state: ProcState::Running,
        hart: None,
    }
}

const STEP: Duration = Duration::from_millis(100);

/// `n` samples 100 ms apart, recorded with a keyframe every `key_ms`: the file and the samples.
fn recording(seed: u64, n: usize, key_ms: u64) -> (Vec<u8>, Vec<Snapshot>) {
    let info = StartInfo {
        origin: "a simulation".into(),
        keyframe_every_ms: key_ms,
        ..StartInfo::default()
    };
    let mut sim = Sim::new(seed);
    let mut rec = Recorder::new(Vec::new(), &info).unwrap();
    let mut snaps = Vec::new();
    for i in 0..n {
        let s = sim.sample();
        rec.push(&s, STEP * i as u32).unwrap();
        snaps.push(s);
    }
    (rec.finish(STEP * n as u32).unwrap(), snaps)
}

fn state_of(s: &Snapshot) -> player::State {
    player::State {
        header: s.header.clone(),
        entries: s.entries.clone(),
        procs: s.procs.clone(),
    }
}

/// The samples that wrote a frame (unchanged ones within the heartbeat write none): each
/// frame's time is its sample's.
fn frame_samples<'a>(rec: &Recording, snaps: &'a [Snapshot]) -> Vec<&'a Snapshot> {
    (0..rec.len())
        .map(|f| &snaps[(rec.frame_time(f).as_millis() / STEP.as_millis()) as usize])
        .collect()
}

#[test]
fn every_frame_replays_the_sample_it_recorded() {
    let (bytes, snaps) = recording(7, 200, 1000);
    let rec = Arc::new(Recording::from_bytes(&bytes, "test").unwrap());
    assert!(rec.ended_cleanly() && rec.damage().is_none());
    assert!(rec.keyframes().len() >= 15, "{:?}", rec.keyframes());
    let mut p = Player::new(rec.clone());
    let samples = frame_samples(&rec, &snaps);
    for (f, s) in samples.iter().enumerate() {
        assert_eq!(p.state(Pos::frame(f)), state_of(s), "frame {f}");
        assert_eq!(rec.frame_events(f), &s.events[..], "frame {f}");
    }
    // Samples that wrote nothing changed nothing: the state at their time is theirs too.
    for (i, s) in snaps.iter().enumerate() {
        let pos = p.at_time(STEP * i as u32);
        assert_eq!(p.state(pos).entries, s.entries, "sample {i}");
    }
    assert_eq!(rec.duration(), STEP * 200);
    // Every event once, in order.
    let all = p.events_before(rec.events_total(), usize::MAX);
    let want: Vec<u64> = snaps
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.seq))
        .collect();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
}

#[test]
fn seeking_from_keyframes_equals_playing_through() {
    let (bytes, snaps) = recording(11, 150, 700);
    let rec = Arc::new(Recording::from_bytes(&bytes, "test").unwrap());
    let samples = frame_samples(&rec, &snaps);
    // Backwards, then jumping about: every frame from its keyframe, fresh players and a used one.
    let mut used = Player::new(rec.clone());
    let order: Vec<usize> = (0..rec.len())
        .rev()
        .chain((0..rec.len()).step_by(7))
        .collect();
    for f in order {
        assert_eq!(used.state(Pos::frame(f)), state_of(samples[f]), "frame {f}");
        let mut fresh = Player::new(rec.clone());
        assert_eq!(
            fresh.state(Pos::frame(f)),
            state_of(samples[f]),
            "frame {f}"
        );
    }
}

#[test]
fn stepping_one_event_at_a_time_both_ways_reaches_the_same_states() {
    let (bytes, snaps) = recording(3, 120, 500);
    let rec = Arc::new(Recording::from_bytes(&bytes, "test").unwrap());
    let samples = frame_samples(&rec, &snaps);
    let mut p = Player::new(rec.clone());
    let mut pos = Pos::frame(0);
    let mut forward = vec![(pos, p.state(pos))];
    loop {
        let next = p.step(pos, 1);
        if next == pos {
            break;
        }
        assert_eq!(p.event_count(next), p.event_count(pos) + 1);
        pos = next;
        let st = p.state(pos);
        if pos.partial.is_none() {
            // Where the events of a frame are all applied, the derived state is the recorded one.
            assert_eq!(st.entries, samples[pos.frame].entries, "{pos:?}");
            assert_eq!(st.header.count, samples[pos.frame].header.count);
        }
        forward.push((pos, st));
    }
    assert_eq!(p.event_count(pos), rec.events_total());
    assert!(forward.len() > 100, "{} positions", forward.len());
    // And back, one event at a time, to where it started.
    let mut back = vec![(pos, p.state(pos))];
    loop {
        let prev = p.step(pos, -1);
        if prev == pos {
            break;
        }
        pos = prev;
        back.push((pos, p.state(pos)));
    }
    back.reverse();
    assert_eq!(back, forward);
    // Partial states count pages as the events do.
    for (pos, st) in &forward {
        let pages: u64 = st.entries.iter().map(|e| e.npages).sum();
        assert_eq!(pages, st.header.tracked_pages, "{pos:?}");
    }
}

#[test]
fn an_unchanged_tracker_writes_a_heartbeat_a_second() {
    let mut sim = Sim::new(1);
    let s = sim.sample();
    let mut quiet = s.clone();
    quiet.events.clear();
    let mut rec = Recorder::new(Vec::new(), &StartInfo::default()).unwrap();
    rec.push(&s, Duration::ZERO).unwrap();
    for ms in (100..=2500).step_by(100) {
        rec.push(&quiet, Duration::from_millis(ms)).unwrap();
    }
    assert_eq!(
        rec.frames(),
        3,
        "a keyframe, then an empty delta at 1 s and at 2 s"
    );
    let bytes = rec.finish(Duration::from_millis(2600)).unwrap();
    let r = Recording::from_bytes(&bytes, "t").unwrap();
    assert_eq!(r.duration(), Duration::from_millis(2600));
    assert_eq!(r.frame_time(2), Duration::from_millis(2000));
}

#[test]
fn a_recording_cut_at_any_byte_replays_up_to_the_cut_with_a_clear_error() {
    let (bytes, snaps) = recording(5, 12, 300);
    let full = Arc::new(Recording::from_bytes(&bytes, "t").unwrap());
    let samples = frame_samples(&full, &snaps);
    let (mut empty, mut partial) = (0, 0);
    for cut in 0..bytes.len() {
        match Recording::from_bytes(&bytes[..cut], "t") {
            Err(RecordError::NotARecording { reason, .. }) => {
                assert!(cut < FILE_HEADER_LEN, "cut {cut}: {reason}");
                assert!(reason.contains("shorter than a recording's header"));
            }
            Err(RecordError::Empty { .. }) => empty += 1,
            Err(e) => panic!("cut {cut}: {e}"),
            Ok(r) => {
                partial += 1;
                assert!(!r.ended_cleanly(), "cut {cut}");
                let d = r.damage();
                assert!(
                    d.is_none_or(|d| d.reason.contains("cut off while it was written")),
                    "cut {cut}: {d:?}"
                );
                let mut p = Player::new(Arc::new(r));
                for (f, s) in samples.iter().enumerate().take(p.recording().len()) {
                    assert_eq!(p.state(Pos::frame(f)), state_of(s), "cut {cut}");
                }
            }
        }
    }
    assert!(empty > 0 && partial > 0);
    let e = Recording::from_bytes(&bytes[..40], "rec.lsr")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no complete keyframe") && e.contains("rec.lsr"),
        "{e}"
    );
}

#[test]
fn a_corrupt_checksum_stops_the_replay_at_that_frame() {
    let (mut bytes, _) = recording(9, 30, 500);
    let good = Recording::from_bytes(&bytes, "t").unwrap();
    let n = good.len();
    // Flip a byte in the middle of the file: inside some frame after the first keyframe.
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x40;
    let r = Recording::from_bytes(&bytes, "t").unwrap();
    let d = r.damage().expect("damage found");
    assert!(d.reason.contains("checksum mismatch"), "{d}");
    assert!(d.offset <= at, "{d}");
    assert!(r.len() < n && !r.is_empty());
    assert!(!r.ended_cleanly());
    // Not a recording at all; a newer version.
    let e = Recording::from_bytes(b"hello world, not a recording", "x").unwrap_err();
    assert!(e.to_string().contains("not a Leakscope recording"), "{e}");
    let mut newer = bytes.clone();
    newer[8] = 9;
    let e = Recording::from_bytes(&newer, "x").unwrap_err();
    assert!(e.to_string().contains("format version 9"), "{e}");
}

#[test]
fn a_churning_tracker_costs_a_few_dozen_bytes_an_event() {
    let info = StartInfo {
        keyframe_every_ms: 5000,
        ..StartInfo::default()
    };
    let mut sim = Sim::new(13);
    sim.busy = 60;
    let mut rec = Recorder::new(Vec::new(), &info).unwrap();
    let mut events = 0;
    for i in 0..300u32 {
        let s = sim.sample();
        events += s.events.len();
        rec.push(&s, STEP * i).unwrap();
    }
    let bytes = rec.finish(STEP * 300).unwrap().len();
    // 10 samples a second, ~300 events a second: deflated JSON, keyframes every 5 s.
    assert!(bytes < events * 40, "{bytes} bytes for {events} events");
}
