//! What `inspector check` judges: a [`CheckRun`] takes in the snapshots of one observation
//! period (and the times the tracker could not be read because it stayed mid-change) and
//! turns them into [`Finding`]s. Pure: no I/O, unit-tested on hand-made snapshots.
//!
//! The findings, each about what happened *during* the period (the first snapshot is the
//! baseline; the ring's older history is not judged):
//! - `leak`: a process exited and the exit sweep reclaimed pages it still owned (one finding
//!   per exit), when the period's leaked pages exceed the allowed number;
//! - `dead-owner`: at the end, pages owned by a PID that is no live process (no record in the
//!   process table) and that no exit sweep is reclaiming;
//! - `invalid-free`, `failed-alloc`: the kernel's counters rose (per PID when the events say);
//! - `table-full`: the table was at or above [`TABLE_FULL_PERCENT`] of its capacity;
//! - `stuck`: the generation stayed odd for longer than the allowed time: the kernel stopped
//!   inside the tracker.

use super::{Event, EventKind, LeakTracker, ProcState, Snapshot, KERNEL_PID};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Fill (percent of `capacity`) from which the table counts as full.
pub const TABLE_FULL_PERCENT: u64 = 90;

/// The kind of a finding, serialized as `leak`, `dead-owner`, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    Leak,
    DeadOwner,
    InvalidFree,
    FailedAlloc,
    TableFull,
    Stuck,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Leak => "leak",
            FindingKind::DeadOwner => "dead-owner",
            FindingKind::InvalidFree => "invalid-free",
            FindingKind::FailedAlloc => "failed-alloc",
            FindingKind::TableFull => "table-full",
            FindingKind::Stuck => "stuck",
        }
    }
}

/// One thing wrong, with the process it concerns when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub pid: Option<u32>,
    pub name: Option<String>,
    pub pages: u64,
    pub allocs: u64,
    /// `tag:pages`, most pages first.
    pub tags: Vec<String>,
    /// One line saying what happened.
    pub detail: String,
}

/// What the caller allows before it counts as a finding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Leaked pages (over all exits of the period) tolerated; above it, each exit with
    /// leftovers is a `leak` finding.
    pub max_leaked_pages: u64,
    /// How long the generation may stay odd before it is a `stuck` finding.
    pub stuck_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_leaked_pages: 0,
            stuck_after: Duration::from_secs(1),
        }
    }
}

/// Per-PID totals of one kind of event.
#[derive(Clone, Debug, Default)]
struct Tally {
    allocs: u64,
    pages: u64,
    tags: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, ev: &Event) {
        self.allocs += 1;
        self.pages += ev.npages;
        *self.tags.entry(ev.tag.to_string()).or_default() += ev.npages;
    }
}

/// One observation period; see the module doc.
#[derive(Debug, Default)]
pub struct CheckRun {
    first: Option<Snapshot>,
    last: Option<Snapshot>,
    snapshots: u64,
    leaks: LeakTracker,
    invalid_frees: BTreeMap<u32, Tally>,
    failed_allocs: BTreeMap<u32, Tally>,
    /// Process names seen, for exits reported after the process is gone.
    names: HashMap<u32, String>,
    /// Highest (count, capacity) seen.
    fullest: Option<(u64, u64)>,
    missed_events: u64,
    longest_mid_change: Duration,
}

impl CheckRun {
    pub fn new() -> CheckRun {
        CheckRun::default()
    }

    /// Snapshots taken in.
    pub fn snapshots(&self) -> u64 {
        self.snapshots
    }

    /// The latest snapshot taken in.
    pub fn last(&self) -> Option<&Snapshot> {
        self.last.as_ref()
    }

    /// Takes in the next snapshot. The first is the baseline: its events (the ring's history
    /// from before the period) are not judged.
    pub fn observe(&mut self, snap: Snapshot) {
        for p in &snap.procs {
            self.names.insert(p.pid, p.name.clone());
        }
        if self.first.is_some() {
            self.missed_events += snap.missed_events;
            for ev in &snap.events {
                self.leaks
                    .push(ev, self.names.get(&ev.owner).map(String::as_str));
                match ev.kind {
                    EventKind::InvalidFree => self.invalid_frees.entry(ev.owner).or_default(),
                    EventKind::AllocFailed => self.failed_allocs.entry(ev.owner).or_default(),
                    _ => continue,
                }
                .add(ev);
            }
        } else {
            self.first = Some(snap.clone());
        }
        let fill = (snap.header.count, snap.header.capacity);
        if self.fullest.is_none_or(|(c, _)| fill.0 > c) {
            self.fullest = Some(fill);
        }
        self.snapshots += 1;
        self.last = Some(snap);
    }

    /// Records that the tracker could not be read for `how_long` because its generation
    /// stayed odd.
    pub fn observe_mid_change(&mut self, how_long: Duration) {
        self.longest_mid_change = self.longest_mid_change.max(how_long);
    }

    /// Events that happened during the period but were overwritten in the ring before they
    /// were read: per-PID details may be incomplete (the counters still are exact).
    pub fn missed_events(&self) -> u64 {
        self.missed_events
    }

    /// Everything wrong with the period, by kind, then PID.
    pub fn findings(&self, limits: &Limits) -> Vec<Finding> {
        let mut out = Vec::new();
        self.leak_findings(limits, &mut out);
        self.dead_owner_findings(&mut out);
        self.counter_findings(&mut out);
        if let Some((count, capacity)) = self.fullest.filter(|&(_, cap)| cap > 0) {
            if count * 100 >= capacity * TABLE_FULL_PERCENT {
                out.push(Finding {
                    kind: FindingKind::TableFull,
                    pid: None,
                    name: None,
                    pages: 0,
                    allocs: count,
                    tags: Vec::new(),
                    detail: format!(
                        "alloc_table reached {count} of {capacity} slots ({}%, limit \
                         {TABLE_FULL_PERCENT}%): allocations are about to fail",
                        count * 100 / capacity
                    ),
                });
            }
        }
        if self.longest_mid_change > limits.stuck_after {
            out.push(Finding {
                kind: FindingKind::Stuck,
                pid: None,
                name: None,
                pages: 0,
                allocs: 0,
                tags: Vec::new(),
                detail: format!(
                    "the tracker stayed mid-change (odd generation) for {} ms: the kernel \
                     stopped inside a tracker operation (a hang, or a debugger holding it)",
                    self.longest_mid_change.as_millis()
                ),
            });
        }
        out.sort_by_key(|f| (f.kind, f.pid));
        out
    }

    fn leak_findings(&self, limits: &Limits, out: &mut Vec<Finding>) {
        let leaked: u64 = self.leaks.reports().map(|r| r.pages).sum();
        if leaked <= limits.max_leaked_pages {
            return;
        }
        for r in self.leaks.reports() {
            out.push(Finding {
                kind: FindingKind::Leak,
                pid: Some(r.pid),
                name: Some(r.name.clone()),
                pages: r.pages,
                allocs: r.allocs,
                tags: r
                    .tags
                    .iter()
                    .map(|t| format!("{}:{}", t.tag, t.pages))
                    .collect(),
                detail: format!(
                    "exited still owning {} pages in {} allocations; the exit sweep reclaimed \
                     them ({leaked} leaked pages in the period, {} allowed)",
                    r.pages, r.allocs, limits.max_leaked_pages
                ),
            });
        }
    }

    fn dead_owner_findings(&self, out: &mut Vec<Finding>) {
        let Some(last) = &self.last else {
            return;
        };
        for p in last.pids() {
            if p.pid == KERNEL_PID || p.state != ProcState::Gone || p.allocs == 0 {
                continue;
            }
            out.push(Finding {
                kind: FindingKind::DeadOwner,
                pid: Some(p.pid),
                name: self.names.get(&p.pid).cloned(),
                pages: p.pages,
                allocs: p.allocs,
                tags: p.tags.iter().map(|(t, n)| format!("{t}:{n}")).collect(),
                detail: format!(
                    "{} pages in {} allocations owned by pid {}, which is no live process and \
                     is not being swept: the exit sweep missed them",
                    p.pages, p.allocs, p.pid
                ),
            });
        }
    }

    fn counter_findings(&self, out: &mut Vec<Finding>) {
        let (Some(first), Some(last)) = (&self.first, &self.last) else {
            return;
        };
        let rules = [
            (
                FindingKind::InvalidFree,
                first.header.invalid_frees,
                last.header.invalid_frees,
                &self.invalid_frees,
                "invalid frees (untracked, double, wrong size or not the owner's)",
            ),
            (
                FindingKind::FailedAlloc,
                first.header.failed_allocs,
                last.header.failed_allocs,
                &self.failed_allocs,
                "failed allocations (out of pages, or the table full)",
            ),
        ];
        for (kind, before, after, by_pid, what) in rules {
            if after <= before {
                continue;
            }
            let rose = format!("{what} rose from {before} to {after}");
            if by_pid.is_empty() {
                out.push(Finding {
                    kind,
                    pid: None,
                    name: None,
                    pages: 0,
                    allocs: after - before,
                    tags: Vec::new(),
                    detail: format!("{rose} (the events were overwritten before they were read)"),
                });
            }
            for (&pid, t) in by_pid {
                let mut tags: Vec<(&String, &u64)> = t.tags.iter().collect();
                tags.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                out.push(Finding {
                    kind,
                    pid: Some(pid),
                    name: self.names.get(&pid).cloned(),
                    pages: t.pages,
                    allocs: t.allocs,
                    tags: tags.iter().map(|(tag, n)| format!("{tag}:{n}")).collect(),
                    detail: format!("{rose}; {} of them by pid {pid}", t.allocs),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{entry, event as ev, process, sample};

    /// `sample()` with its dead owner removed (pid 9 owns nothing): a clean baseline.
    fn clean() -> Snapshot {
        let mut s = sample();
        let live: Vec<u32> = s.procs.iter().map(|p| p.pid).collect();
        std::sync::Arc::make_mut(&mut s.entries)
            .retain(|e| e.owner == KERNEL_PID || live.contains(&e.owner));
        s.header.count = s.entries.len() as u64;
        s.events.clear();
        s
    }

    fn kinds(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn a_quiet_period_has_no_findings_and_history_is_not_judged() {
        let mut first = clean();
        // Before the period: a leak and an invalid free, still in the ring.
        first.events = vec![
            ev(1, EventKind::ExitReclaim, 4, 3, "heap"),
            ev(2, EventKind::InvalidFree, 5, 1, "heap"),
        ];
        first.header.invalid_frees = 1;
        let mut run = CheckRun::new();
        run.observe(first);
        run.observe(clean_with_counters(1, 0));
        assert_eq!(run.findings(&Limits::default()), vec![]);
    }

    fn clean_with_counters(invalid_frees: u64, failed_allocs: u64) -> Snapshot {
        let mut s = clean();
        s.header.invalid_frees = invalid_frees;
        s.header.failed_allocs = failed_allocs;
        s
    }

    #[test]
    fn an_exit_with_leftovers_during_the_period_is_a_leak_per_exit() {
        let mut run = CheckRun::new();
        let mut first = clean();
        first.procs.push(process(8, "leak", "running"));
        run.observe(first);
        let mut later = clean();
        later.events = vec![
            ev(10, EventKind::ExitReclaim, 8, 3, "alloc_pages"),
            ev(11, EventKind::ExitReclaim, 8, 1, "alloc_pages"),
            ev(12, EventKind::ExitReclaim, 8, 2, "user_stack"),
        ];
        run.observe(later);
        let f = run.findings(&Limits::default());
        assert_eq!(kinds(&f), ["leak"]);
        let leak = &f[0];
        assert_eq!(
            (leak.pid, leak.name.as_deref(), leak.pages, leak.allocs),
            (Some(8), Some("leak"), 6, 3)
        );
        assert_eq!(leak.tags, ["alloc_pages:4", "user_stack:2"]);
        assert!(
            leak.detail.contains("exit sweep reclaimed"),
            "{}",
            leak.detail
        );
        // Tolerated up to the limit, reported above it.
        let allow = |n| Limits {
            max_leaked_pages: n,
            ..Limits::default()
        };
        assert!(run.findings(&allow(6)).is_empty());
        assert_eq!(kinds(&run.findings(&allow(5))), ["leak"]);
    }

    #[test]
    fn pages_of_a_pid_that_is_no_process_are_a_dead_owner() {
        let mut run = CheckRun::new();
        run.observe(clean());
        let mut last = clean();
        std::sync::Arc::make_mut(&mut last.entries).push(entry(40, 0x8090_0000, 5, 9, "heap"));
        std::sync::Arc::make_mut(&mut last.entries).push(entry(41, 0x8095_0000, 1, 9, "heap"));
        run.observe(last);
        let f = run.findings(&Limits::default());
        assert_eq!(kinds(&f), ["dead-owner"]);
        assert_eq!((f[0].pid, f[0].pages, f[0].allocs), (Some(9), 6, 2));
        // A live process's pages are not.
        let mut run = CheckRun::new();
        let mut s = clean();
        std::sync::Arc::make_mut(&mut s.entries).push(entry(40, 0x8090_0000, 5, 9, "heap"));
        s.procs.push(process(9, "worker", "sleeping"));
        run.observe(s);
        assert!(run.findings(&Limits::default()).is_empty());
    }

    #[test]
    fn rising_counters_are_findings_per_pid_or_overall() {
        let mut run = CheckRun::new();
        run.observe(clean_with_counters(2, 0));
        let mut later = clean_with_counters(4, 1);
        later.events = vec![
            ev(20, EventKind::InvalidFree, 3, 1, "heap"),
            ev(21, EventKind::InvalidFree, 3, 2, "heap"),
        ];
        run.observe(later);
        let f = run.findings(&Limits::default());
        assert_eq!(kinds(&f), ["invalid-free", "failed-alloc"]);
        assert_eq!((f[0].pid, f[0].allocs, f[0].pages), (Some(3), 2, 3));
        assert!(f[0].detail.contains("rose from 2 to 4"), "{}", f[0].detail);
        assert_eq!(
            (f[1].pid, f[1].allocs),
            (None, 1),
            "no event: one overall finding"
        );
    }

    #[test]
    fn a_nearly_full_table_and_a_stuck_tracker_are_findings() {
        let mut run = CheckRun::new();
        let mut s = clean();
        s.header.capacity = 100;
        s.header.count = 89;
        run.observe(s.clone());
        assert!(run.findings(&Limits::default()).is_empty(), "89% is fine");
        s.header.count = 90;
        run.observe(s);
        run.observe_mid_change(Duration::from_millis(900));
        assert_eq!(kinds(&run.findings(&Limits::default())), ["table-full"]);
        run.observe_mid_change(Duration::from_millis(1500));
        assert_eq!(
            kinds(&run.findings(&Limits::default())),
            ["table-full", "stuck"]
        );
    }

    #[test]
    fn findings_serialize_with_their_contract_fields() {
        let f = Finding {
            kind: FindingKind::DeadOwner,
            pid: Some(9),
            name: None,
            pages: 6,
            allocs: 2,
            tags: vec!["heap:6".into()],
            detail: "d".into(),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "dead-owner");
        for k in ["kind", "pid", "name", "pages", "allocs", "tags", "detail"] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }
}
