//! Recordings: a session of the tracker kept in one file, written as it goes and replayed
//! later (docs/recording-format.md). [`Recorder`] turns successive snapshots into frames:
//! keyframes (the full state) at regular intervals, deltas (changed slots, the events, the
//! process table when it changed) between them. [`Recording`] reads a file back, up to any
//! damage; [`Player`] rebuilds the state at any frame from the nearest keyframe, and at any
//! single event, so a replay can seek, play and step both ways.
//!
//! Plain data and files: nothing here touches a guest. Entries, events and processes are
//! written through serde as whole structs (JSON), so fields added to the model come along and
//! old recordings still read (missing optional fields are `None`).

mod format;
mod player;
mod writer;

pub use format::{Damage, FrameKind, FILE_HEADER_LEN, MAGIC, VERSION};
pub use player::{Player, Pos, Recording};
pub use writer::{Recorder, DEFAULT_KEYFRAME_EVERY, HEARTBEAT};

use crate::model::{Entry, Event, Header, Process, ReadPath};
use serde::{Deserialize, Serialize};

/// The `Start` frame: what was recorded, from where.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartInfo {
    /// Wall-clock time the recording began, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Where the snapshots came from, in words (`the RAM file /dev/shm/…`).
    pub origin: String,
    /// The kernel ELF the snapshots were decoded with.
    pub elf: String,
    /// How the snapshots were read (their `read_path`, which a replay reports too).
    pub read_path: ReadPath,
    /// Time between keyframes, in ms.
    pub keyframe_every_ms: u64,
    /// The inspector's version that wrote the file.
    pub inspector: String,
}

/// A `Keyframe` frame's payload: the full state after one sample, and that sample's events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct KeyframeRec {
    pub header: Header,
    pub entries: Vec<Entry>,
    pub procs: Vec<Process>,
    pub events: Vec<Event>,
    pub missed_events: u64,
    pub rebooted: bool,
}

/// A `Delta` frame's payload: what one sample changed since the previous frame. The entries
/// are the previous frame's with `events` applied in order (`Alloc` fills its slot, `Free` and
/// `ExitReclaim` empty theirs), then `removed` and `set`: what the events do not explain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DeltaRec {
    /// The header's fields that changed, by name.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub header: serde_json::Map<String, serde_json::Value>,
    /// Slots no longer in use (beyond the events).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<usize>,
    /// Entries new or changed, by slot (beyond the events).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<Entry>,
    /// The whole process table; absent when unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procs: Option<Vec<Process>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "is_zero")]
    pub missed_events: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `End` frame's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct EndRec {
    /// Keyframes and deltas written.
    pub frames: u64,
}

/// Why a recording cannot be replayed at all (damage after the first keyframe is not an
/// error: the recording replays up to it, see [`Recording::damage`]).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read the recording {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    NotARecording { path: String, reason: String },
    #[error(
        "{path} holds no complete keyframe{}: nothing to replay (was the recorder stopped at once?)",
        damage.as_ref().map(|d| format!(" (damaged {d})")).unwrap_or_default()
    )]
    Empty {
        path: String,
        damage: Option<Damage>,
    },
}

#[cfg(test)]
mod tests;
