//! The inspector's view of the tracker: snapshots decoded by field name, per-PID aggregates,
//! the difference between two snapshots (`diff`), leak reports grouped per process exit
//! (`leaks`) and the findings of `inspector check` (`check`). Plain data: no I/O, no terminal, no DWARF types.
//!
//! The `snapshot` layer fills these from a target; everything here is pure and unit-tested on
//! hand-made snapshots.

pub mod check;
mod diff;
mod groups;
mod leaks;
pub use diff::{diff, Diff, PidChange, TagChange};
pub use groups::{site_label, Group, GroupBy, NO_SITE};
pub use leaks::{LeakReport, LeakTracker, SiteLeak, TagLeak, LEAK_HISTORY_LEN};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// PID of the kernel in `owner` fields.
pub const KERNEL_PID: u32 = 0;

/// One live allocation (a used slot of `alloc_table`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub slot: usize,
    pub pa: u64,
    pub npages: u64,
    pub owner: u32,
    /// Shared: one string per distinct tag, so copying entries allocates nothing.
    pub tag: Arc<str>,
    /// Timer ticks at allocation; 0 when the kernel does not export it.
    pub time: u64,
    /// The kernel line that allocated (the call of `alloc_pages`), when the kernel records it
    /// and its DWARF names it. Shared: one per distinct site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Arc<Site>>,
    /// The program's line that asked for the pages (its `alloc_pages` call), for pages a
    /// program asked for, when its ELF (with line tables) is at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_site: Option<Arc<Site>>,
}

/// A line of code that allocated: function, file and line. `file` is relative to the
/// workspace root when it lies inside it (`kernel/src/proc.rs`), else as DWARF names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Site {
    pub function: String,
    pub file: String,
    /// 0 when the line table has no line for the address.
    pub line: u32,
}

impl std::fmt::Display for Site {
    /// `file:line function`, e.g. `kernel/user/src/bin/leak.rs:21 main`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {}", self.file, self.line, self.function)
    }
}

/// What a tracker event records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Alloc,
    Free,
    ExitReclaim,
    AllocFailed,
    InvalidFree,
    /// A kind this inspector does not know (a newer kernel), by its enumerator name or number.
    Other(String),
}

impl EventKind {
    /// Maps the kernel's `EventKind` enumerator name (as DWARF names it) to ours.
    pub fn from_name(name: &str) -> EventKind {
        match name {
            "Alloc" => EventKind::Alloc,
            "Free" => EventKind::Free,
            "ExitReclaim" => EventKind::ExitReclaim,
            "AllocFailed" => EventKind::AllocFailed,
            "InvalidFree" => EventKind::InvalidFree,
            other => EventKind::Other(other.to_string()),
        }
    }
}

/// One record of the kernel's event ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub kind: EventKind,
    pub owner: u32,
    /// The table slot an `Alloc` filled or a `Free`/`ExitReclaim` emptied, when the kernel
    /// says (None for other kinds, and for kernels whose events carry no slot).
    pub slot: Option<usize>,
    pub pa: u64,
    pub npages: u64,
    pub tag: Arc<str>,
    pub time: u64,
    /// The allocation's sites, as in [`Entry`] (none for `InvalidFree`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<Arc<Site>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_site: Option<Arc<Site>>,
}

/// A process's state: the kernel's `ProcState` enumerators (by DWARF name), plus the two
/// states the inspector infers for an owner that has no process record. Shown and serialized
/// lower-case (`running`, `zombie`, `gone`; the kernel's own pid shows as `-`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProcState {
    Unused,
    Runnable,
    Running,
    Sleeping,
    Waiting,
    Zombie,
    /// Owns pages but has no process record: it exited and was reaped (or never existed).
    Gone,
    /// [`KERNEL_PID`], which is no process.
    Kernel,
    /// An enumerator this inspector does not know (a newer kernel), by name or number.
    Other(String),
}

impl ProcState {
    /// Maps the kernel's enumerator name (any case) to ours.
    pub fn from_name(name: &str) -> ProcState {
        match name.to_ascii_lowercase().as_str() {
            "unused" => ProcState::Unused,
            "runnable" => ProcState::Runnable,
            "running" => ProcState::Running,
            "sleeping" => ProcState::Sleeping,
            "waiting" => ProcState::Waiting,
            "zombie" => ProcState::Zombie,
            other => ProcState::Other(other.to_string()),
        }
    }

    /// The lower-case name shown and serialized.
    pub fn as_str(&self) -> &str {
        match self {
            ProcState::Unused => "unused",
            ProcState::Runnable => "runnable",
            ProcState::Running => "running",
            ProcState::Sleeping => "sleeping",
            ProcState::Waiting => "waiting",
            ProcState::Zombie => "zombie",
            ProcState::Gone => "gone",
            ProcState::Kernel => "-",
            ProcState::Other(name) => name,
        }
    }
}

impl std::fmt::Display for ProcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for ProcState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The inverse of `Serialize`: `gone` and `-` back to the inferred states, the rest by name.
impl<'de> Deserialize<'de> for ProcState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "gone" => ProcState::Gone,
            "-" => ProcState::Kernel,
            other => ProcState::from_name(other),
        })
    }
}

/// One process from the kernel's `proc_table`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    pub name: String,
    pub state: ProcState,
    /// The hart running the process: set only while it is `Running` on one, and only when
    /// the kernel's `proc_table` records harts (older kernels and the C example do not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hart: Option<u32>,
}

impl Process {
    /// `name(pid)`, e.g. `churn(7)`: how stops and the header name a process.
    pub fn label(&self) -> String {
        format!("{}({})", self.name, self.pid)
    }
}

/// The tracker header (`alloc_tracker`) plus `alloc_table_count`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Header {
    pub capacity: u64,
    pub count: u64,
    pub generation: u64,
    pub high_water: u64,
    pub failed_allocs: u64,
    pub invalid_frees: u64,
    pub total_allocs: u64,
    pub total_frees: u64,
    pub reclaimed_allocs: u64,
    pub reclaimed_pages: u64,
    pub event_head: u64,
    pub ram_base: u64,
    pub ram_pages: u64,
    /// First page the kernel's allocator manages (0: the kernel does not say). Below it:
    /// firmware and kernel image; from it on, every page is either tracked or free.
    pub alloc_base: u64,
    pub free_pages: u64,
    pub tracked_pages: u64,
    /// Frequency of the timer whose ticks stamp entries and events (`time`), in Hz, as the
    /// kernel read it from the device tree; 0 when the kernel does not say.
    pub timebase_hz: u64,
    /// A value the kernel draws once per boot (0: the kernel does not say): when it changes,
    /// the guest rebooted, whatever the generation says.
    pub boot_nonce: u64,
    /// The kernel exports the chapter's table alone (no tracker header): the counters above
    /// but `capacity`, `count` and `tracked_pages` are unknown (0), not zero.
    pub bare: bool,
}

/// How a snapshot was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadPath {
    /// Through the GDB stub, with the guest halted for the reads.
    #[default]
    #[serde(rename = "gdb")]
    Stub,
    /// From guest RAM in QEMU's shared memory file, with the guest running.
    #[serde(rename = "ram")]
    Ram,
}

/// Everything one consistent read of the tracker learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub header: Header,
    /// Live entries in slot order. Shared: a snapshot of an unchanged table shares its
    /// entries with the previous one, so taking and keeping it copies nothing
    /// (`Arc::make_mut` to change them).
    pub entries: Arc<Vec<Entry>>,
    pub procs: Vec<Process>,
    /// Events new since the previous snapshot (all events still in the ring for the first one).
    pub events: Vec<Event>,
    /// Events that happened since the previous snapshot but were overwritten in the ring first.
    pub missed_events: u64,
    /// How long the guest was halted for this snapshot, in microseconds.
    pub pause_us: u64,
    /// Whether the table itself was read (false: the entries were the previous snapshot's,
    /// unchanged or updated from the events in between).
    pub table_read: bool,
    /// The guest is held (by a debugger) in the middle of a tracker change: this is the last
    /// consistent state, not the current one.
    pub mid_change: bool,
    /// The guest rebooted since the previous snapshot (its boot nonce changed): everything
    /// was read afresh, and the events are the new boot's.
    pub rebooted: bool,
    /// Through the stub (halted) or from the RAM file (running).
    pub read_path: ReadPath,
}

/// Per-PID totals: what the overview and `mem` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PidSummary {
    pub pid: u32,
    pub name: String,
    pub state: ProcState,
    pub allocs: u64,
    pub pages: u64,
    /// Pages per tag, most pages first.
    pub tags: Vec<(String, u64)>,
}

impl Snapshot {
    /// One summary per PID that owns pages or has a process record, by PID; the kernel (pid 0)
    /// is included when it owns anything.
    pub fn pids(&self) -> Vec<PidSummary> {
        let mut by_pid: BTreeMap<u32, (u64, u64, BTreeMap<&str, u64>)> = BTreeMap::new();
        for e in self.entries.iter() {
            let s = by_pid.entry(e.owner).or_default();
            s.0 += 1;
            s.1 += e.npages;
            *s.2.entry(&*e.tag).or_default() += e.npages;
        }
        for p in &self.procs {
            by_pid.entry(p.pid).or_default();
        }
        by_pid
            .into_iter()
            .map(|(pid, (allocs, pages, tags))| {
                let proc_ = self.process(pid);
                let mut tags: Vec<(String, u64)> =
                    tags.into_iter().map(|(t, n)| (t.to_string(), n)).collect();
                tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                PidSummary {
                    pid,
                    name: match (pid, proc_) {
                        (_, Some(p)) => p.name.clone(),
                        (KERNEL_PID, None) => "kernel".to_string(),
                        _ => "?".to_string(),
                    },
                    state: match (pid, proc_) {
                        (_, Some(p)) => p.state.clone(),
                        (KERNEL_PID, None) => ProcState::Kernel,
                        _ => ProcState::Gone,
                    },
                    allocs,
                    pages,
                    tags,
                }
            })
            .collect()
    }

    /// The process record for `pid`, if the process table has one.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.procs.iter().find(|p| p.pid == pid)
    }

    /// The process running on `hart`, if the process table says (None: the hart is idle, in
    /// its scheduler, or the kernel does not record harts).
    pub fn on_hart(&self, hart: u32) -> Option<&Process> {
        running_on(&self.procs, hart)
    }

    /// Pages in RAM that are neither free nor tracked: the kernel image, boot structures.
    pub fn untracked_used_pages(&self) -> u64 {
        let h = &self.header;
        h.ram_pages
            .saturating_sub(h.free_pages)
            .saturating_sub(h.tracked_pages)
    }
}

/// The process of `procs` running on `hart` (see [`Snapshot::on_hart`]).
pub fn running_on(procs: &[Process], hart: u32) -> Option<&Process> {
    procs
        .iter()
        .find(|p| p.hart == Some(hart) && p.state == ProcState::Running)
}

#[cfg(test)]
pub(crate) mod tests;
