//! `inspector record`: keeps a session of the tracker in one file, for `snapshot --replay`,
//! `tui --replay` and `diff` later; until `--duration`, Ctrl-C, SIGTERM or SIGHUP. The kernel
//! is left running.
//!
//! ```text
//! inspector record --ram /dev/shm/leakscope-1234.ram -o churn.lsrec --duration 1m
//! inspector record --gdb 127.0.0.1:1234 -o session.lsrec            # until Ctrl-C
//! inspector snapshot --replay churn.lsrec --at 20s
//! inspector tui --replay churn.lsrec
//! ```
//!
//! The file (docs/recording-format.md) holds the tracker's full state every `--keyframe-every`,
//! each sample's changes and events between, and the process table when it changes; every
//! frame is written as it is taken, so a crash loses at most the sample in progress. If the
//! kernel goes away the recording ends there (complete up to that moment) and the command
//! exits 1. The last line (stderr) says what was written.
//!
//! `tui --record FILE` records what the TUI samples, the same way.

use super::Conn;
use crate::debugger::live::{DebugCommand, DebugReport, Debuggable};
use crate::model::{ReadPath, Snapshot};
use crate::record::{Recorder, StartInfo};
use crate::source::{
    stayed_mid_change, Capabilities, NotReady, ReplayControl, ReplaySource, Seek, Source,
};
use crate::target::{install_ctrlc_handler, Cancelled};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The recording to write (replaced if it exists).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long, e.g. 30s or 5m (default: until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Time between snapshots [default: 100ms from the RAM file, 250ms through the stub].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// Time between keyframes (full states): a seek replays at most this much.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub keyframe_every: Duration,
}

/// Time between snapshots from the RAM file (each costs the guest nothing).
pub const RAM_INTERVAL: Duration = Duration::from_millis(100);
/// Time between snapshots through the stub (each halts the guest briefly).
pub const STUB_INTERVAL: Duration = Duration::from_millis(250);

/// A recorder writing to `path`, its `Start` frame saying where the snapshots come from.
pub fn create_recorder(
    path: &Path,
    conn: &Conn,
    keyframe_every: Duration,
) -> Result<Recorder<File>> {
    let file = File::create(path)
        .with_context(|| format!("cannot create the recording {}", path.display()))?;
    let info = StartInfo {
        started_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        origin: conn.view_origin(),
        elf: conn.elf.display().to_string(),
        read_path: if conn.ram.is_some() {
            ReadPath::Ram
        } else {
            ReadPath::Stub
        },
        keyframe_every_ms: keyframe_every.as_millis() as u64,
        inspector: env!("CARGO_PKG_VERSION").to_string(),
    };
    Recorder::new(file, &info)
        .with_context(|| format!("cannot write the recording {}", path.display()))
}

pub fn run(args: RecordArgs) -> Result<()> {
    let stop = install_ctrlc_handler()?;
    let mut source = args.conn.view_source(&stop, None)?;
    source.reconnect()?;
    let interval = args.interval.unwrap_or(if args.conn.ram.is_some() {
        RAM_INTERVAL
    } else {
        STUB_INTERVAL
    });
    let mut rec = create_recorder(&args.output, &args.conn, args.keyframe_every)?;
    let start = Instant::now();
    let left = || match args.duration {
        Some(d) => d.saturating_sub(start.elapsed()),
        None => Duration::MAX,
    };
    let mut lost = None;
    let mut events = 0usize;
    while !stop.is_set() && !left().is_zero() {
        match source.sample() {
            Ok(snap) => {
                events += snap.events.len();
                rec.push(&snap, start.elapsed())
                    .with_context(|| format!("writing the recording {}", args.output.display()))?;
            }
            Err(e) if Cancelled::is(&e) => break,
            // Still booting, or mid-change past the read's bound: nothing to record yet.
            Err(e) if NotReady::find(&e).is_some() || stayed_mid_change(&e) => {}
            Err(e) => {
                lost = Some(e);
                break;
            }
        }
        stop.sleep(interval.min(left()));
    }
    let took = start.elapsed();
    let finished = source.finish();
    let (frames, bytes) = (rec.frames(), rec.bytes());
    rec.finish(took)
        .with_context(|| format!("finishing the recording {}", args.output.display()))?;
    eprintln!(
        "inspector: recorded {:.1} s to {}: {frames} frames, {events} events, {bytes} bytes",
        took.as_secs_f64(),
        args.output.display()
    );
    if let Some(e) = lost {
        return Err(e.context(format!(
            "lost the kernel at {} after {:.1} s; the recording up to then is complete",
            args.conn.view_origin(),
            took.as_secs_f64()
        )));
    }
    finished
}

/// A moment of a recording: a time from its start, or its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Time(Duration),
    End,
}

/// `end`, or a duration such as `3s`, `1m20s`, `250ms`, `0`.
pub fn parse_at(s: &str) -> std::result::Result<At, String> {
    match s.trim() {
        "end" => Ok(At::End),
        "0" => Ok(At::Time(Duration::ZERO)),
        t => humantime::parse_duration(t)
            .map(At::Time)
            .map_err(|e| format!("`{s}` is neither a time (3s, 1m20s) nor `end`: {e}")),
    }
}

/// The tracker as recorded in `path` at `at`, in the shape of a live snapshot. A damaged
/// recording is replayed up to the damage, with a warning on stderr; a time past what the
/// recording holds is an error.
pub fn recorded_snapshot(path: &Path, at: At) -> Result<Snapshot> {
    let mut source = ReplaySource::open(path)?;
    let rec = source.recording().clone();
    if let Some(d) = rec.damage() {
        eprintln!(
            "inspector: warning: the recording {} is damaged {d}; replaying the {:.1} s before it",
            path.display(),
            rec.duration().as_secs_f64()
        );
    }
    let seek = match at {
        At::End => Seek::End,
        At::Time(t) if t > rec.duration() => bail!(
            "the recording {} lasts {:.1} s{}: ask for a time up to that, or `end`",
            path.display(),
            rec.duration().as_secs_f64(),
            if rec.damage().is_some() {
                " (up to its damage)"
            } else {
                ""
            }
        ),
        At::Time(t) => Seek::Time(t),
    };
    source.control().seek(seek);
    source.sample()
}

/// Any data source, recorded as it is sampled (`tui --record`). Debugger commands pass
/// through. A write error stops the recording and is reported once as a sample error; the
/// views go on.
pub struct Tee {
    inner: Box<dyn Debuggable>,
    recorder: Option<Recorder<File>>,
    path: PathBuf,
    start: Instant,
}

impl Tee {
    pub fn new(inner: Box<dyn Debuggable>, recorder: Recorder<File>, path: &Path) -> Tee {
        Tee {
            inner,
            recorder: Some(recorder),
            path: path.to_path_buf(),
            start: Instant::now(),
        }
    }

    fn end_recording(&mut self) {
        if let Some(r) = self.recorder.take() {
            let _ = r.finish(self.start.elapsed());
        }
    }
}

impl Source for Tee {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn sample(&mut self) -> Result<Snapshot> {
        let snap = self.inner.sample()?;
        if let Some(r) = &mut self.recorder {
            if let Err(e) = r.push(&snap, self.start.elapsed()) {
                self.recorder = None;
                bail!(
                    "writing the recording {} failed: {e}; recording stopped, the views go on",
                    self.path.display()
                );
            }
        }
        Ok(snap)
    }
    fn reconnect(&mut self) -> Result<()> {
        self.inner.reconnect()
    }
    fn detach(&mut self) {
        self.end_recording();
        self.inner.detach()
    }
    fn finish(&mut self) -> Result<()> {
        self.end_recording();
        self.inner.finish()
    }
    fn replay_control(&self) -> Option<ReplayControl> {
        self.inner.replay_control()
    }
    fn source_root(&self) -> Option<std::path::PathBuf> {
        self.inner.source_root()
    }
}

impl Debuggable for Tee {
    fn command(&mut self, cmd: DebugCommand) -> Result<DebugReport> {
        self.inner.command(cmd)
    }
    fn take_stop_report(&mut self) -> Option<DebugReport> {
        self.inner.take_stop_report()
    }
}
