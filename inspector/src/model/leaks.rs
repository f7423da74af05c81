//! Leak reports: the `ExitReclaim` events of one process exit grouped into one report (pages
//! and allocations per tag, and per site when the kernel records sites), kept in a bounded
//! history.
//!
//! Contract: reclaims of pid P belong to the same exit until any other event of P is seen
//! (an `Alloc` means P, or a new process reusing P, is alive again). Events of other PIDs in
//! between do not split an exit.

use super::{Event, EventKind};
use std::collections::VecDeque;

/// Leak reports kept (oldest dropped first).
pub const LEAK_HISTORY_LEN: usize = 500;

/// Pages of one tag in a leak report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagLeak {
    pub tag: String,
    pub allocs: u64,
    pub pages: u64,
}

/// Pages of one call site in a leak report: the line that allocated what was left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteLeak {
    /// `file:line function` ([`site_label`](super::site_label)): the program's line for pages
    /// a program asked for, else the kernel's.
    pub site: String,
    pub allocs: u64,
    pub pages: u64,
}

impl SiteLeak {
    /// E.g. `kernel/user/src/bin/leak.rs:21 main: 20 pages in 7 allocations`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} page{} in {} allocation{}",
            self.site,
            self.pages,
            plural(self.pages),
            self.allocs,
            plural(self.allocs)
        )
    }
}

/// The leftovers of one process exit, built from its `ExitReclaim` events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    pub pid: u32,
    /// Process name when it was known (from any snapshot's process table), else `?`.
    pub name: String,
    pub first_seq: u64,
    /// Timer ticks of the first reclaim.
    pub time: u64,
    pub allocs: u64,
    pub pages: u64,
    /// Per tag, most pages first (ties by name).
    pub tags: Vec<TagLeak>,
    /// Per site, most pages first (ties by label); empty when the events carry no sites.
    pub sites: Vec<SiteLeak>,
    /// Still accepting reclaims: no other event of this pid has been seen since.
    open: bool,
}

impl LeakReport {
    /// One line, e.g. `pid 7 (leak) leak: 20 pages in 6 allocations force-freed: heap ×4, …`.
    pub fn summary(&self) -> String {
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|t| format!("{} ×{} ({} p)", t.tag, t.allocs, t.pages))
            .collect();
        format!(
            "pid {} ({}) leak: {} page{} in {} allocation{} force-freed: {}",
            self.pid,
            self.name,
            self.pages,
            plural(self.pages),
            self.allocs,
            plural(self.allocs),
            tags.join(", ")
        )
    }
}

/// The plural suffix for a count of `n`: `""` for one, else `"s"`.
fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Groups `ExitReclaim` events into per-exit reports (see the module doc for what one exit
/// is). Reports are kept in order of their first reclaim, bounded by `LEAK_HISTORY_LEN`.
#[derive(Clone, Debug, Default)]
pub struct LeakTracker {
    reports: VecDeque<LeakReport>,
}

impl LeakTracker {
    /// Takes in the next event, in sequence order; `name` is its owner's process name when
    /// known.
    pub fn push(&mut self, ev: &Event, name: Option<&str>) {
        if ev.kind != EventKind::ExitReclaim {
            for r in self
                .reports
                .iter_mut()
                .rev()
                .filter(|r| r.pid == ev.owner && r.open)
            {
                r.open = false;
            }
            return;
        }
        let idx = match self
            .reports
            .iter()
            .rposition(|r| r.pid == ev.owner && r.open)
        {
            Some(i) => i,
            None => {
                if self.reports.len() == LEAK_HISTORY_LEN {
                    self.reports.pop_front();
                }
                self.reports.push_back(LeakReport {
                    pid: ev.owner,
                    name: name.unwrap_or("?").to_string(),
                    first_seq: ev.seq,
                    time: ev.time,
                    allocs: 0,
                    pages: 0,
                    tags: Vec::new(),
                    sites: Vec::new(),
                    open: true,
                });
                self.reports.len() - 1
            }
        };
        let r = &mut self.reports[idx];
        r.allocs += 1;
        r.pages += ev.npages;
        match r.tags.iter_mut().find(|t| *t.tag == *ev.tag) {
            Some(t) => {
                t.allocs += 1;
                t.pages += ev.npages;
            }
            None => r.tags.push(TagLeak {
                tag: ev.tag.to_string(),
                allocs: 1,
                pages: ev.npages,
            }),
        }
        r.tags
            .sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.tag.cmp(&b.tag)));
        if ev.site.is_some() || ev.user_site.is_some() {
            let site = ev.site_label();
            match r.sites.iter_mut().find(|s| s.site == site) {
                Some(s) => {
                    s.allocs += 1;
                    s.pages += ev.npages;
                }
                None => r.sites.push(SiteLeak {
                    site,
                    allocs: 1,
                    pages: ev.npages,
                }),
            }
            r.sites
                .sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.site.cmp(&b.site)));
        }
    }

    /// Reports, oldest first.
    pub fn reports(&self) -> impl DoubleEndedIterator<Item = &LeakReport> + ExactSizeIterator {
        self.reports.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaims_are_grouped_by_the_site_that_allocated_them() {
        use crate::model::tests::event;
        use crate::model::Site;
        use std::sync::Arc;
        let at = |file: &str, line: u32| {
            Some(Arc::new(Site {
                function: "main".into(),
                file: file.into(),
                line,
            }))
        };
        let mut t = LeakTracker::default();
        for (seq, npages, user) in [(1, 3, 21), (2, 4, 21), (3, 1, 30)] {
            let mut ev = event(seq, EventKind::ExitReclaim, 7, npages, "alloc_pages");
            ev.site = at("kernel/src/syscall.rs", 161);
            ev.user_site = at("kernel/user/src/bin/leak.rs", user);
            t.push(&ev, Some("leak"));
        }
        // A reclaim without sites (an older kernel) counts in the report, not under a site.
        t.push(
            &event(4, EventKind::ExitReclaim, 7, 2, "alloc_pages"),
            Some("leak"),
        );
        let r = t.reports().next().unwrap();
        assert_eq!((r.allocs, r.pages), (4, 10));
        let lines: Vec<String> = r.sites.iter().map(SiteLeak::line).collect();
        assert_eq!(
            lines,
            [
                "kernel/user/src/bin/leak.rs:21 main: 7 pages in 2 allocations",
                "kernel/user/src/bin/leak.rs:30 main: 1 page in 1 allocation",
            ]
        );
    }
    use crate::model::tests::{event as ev, sample};

    /// Pushes `events` in order, naming owners from `sample()`'s process table (shell is
    /// pid 1, leak pid 7; pid 9 has no record).
    fn push_all(leaks: &mut LeakTracker, events: &[Event]) {
        let procs = sample();
        for e in events {
            leaks.push(e, procs.process(e.owner).map(|p| p.name.as_str()));
        }
    }

    #[test]
    fn leaks_grouped_per_exit_by_pid_and_tag() {
        let mut leaks = LeakTracker::default();
        push_all(
            &mut leaks,
            &[
                ev(10, EventKind::Alloc, 7, 3, "heap"),
                ev(11, EventKind::ExitReclaim, 7, 3, "heap"),
                ev(12, EventKind::ExitReclaim, 7, 2, "user_stack"),
                ev(13, EventKind::Alloc, 1, 1, "heap"), // another pid: does not split pid 7's exit
                ev(14, EventKind::ExitReclaim, 7, 5, "heap"),
                ev(15, EventKind::ExitReclaim, 9, 1, "page_table"),
            ],
        );
        // pid 7 is reused: an Alloc of pid 7 closes the first exit, the next reclaim is a new one.
        push_all(
            &mut leaks,
            &[
                ev(16, EventKind::ExitReclaim, 7, 1, "heap"), // still the first exit (no pid-7 event between)
                ev(17, EventKind::Alloc, 7, 1, "heap"),
                ev(18, EventKind::ExitReclaim, 7, 1, "heap"),
            ],
        );

        let r: Vec<&LeakReport> = leaks.reports().collect();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].pid, r[0].first_seq, r[0].allocs, r[0].pages),
            (7, 11, 4, 11)
        );
        assert_eq!(r[0].name, "leak");
        assert_eq!(
            r[0].tags,
            [
                TagLeak {
                    tag: "heap".into(),
                    allocs: 3,
                    pages: 9
                },
                TagLeak {
                    tag: "user_stack".into(),
                    allocs: 1,
                    pages: 2
                },
            ]
        );
        assert_eq!(
            r[0].summary(),
            "pid 7 (leak) leak: 11 pages in 4 allocations force-freed: heap ×3 (9 p), user_stack ×1 (2 p)"
        );
        assert_eq!((r[1].pid, r[1].name.as_str(), r[1].pages), (9, "?", 1));
        assert_eq!((r[2].pid, r[2].first_seq, r[2].allocs), (7, 18, 1));
        assert!(r[1]
            .summary()
            .contains("1 page in 1 allocation force-freed"));
    }

    #[test]
    fn leak_reports_are_bounded() {
        let mut leaks = LeakTracker::default();
        let events: Vec<Event> = (0..LEAK_HISTORY_LEN as u64 + 10)
            .map(|k| ev(k, EventKind::ExitReclaim, 100 + k as u32, 1, "heap"))
            .collect();
        push_all(&mut leaks, &events);
        assert_eq!(leaks.reports().len(), LEAK_HISTORY_LEN);
        assert_eq!(leaks.reports().next().unwrap().first_seq, 10);
    }
}
