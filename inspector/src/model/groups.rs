//! Pages and allocations per group of live entries — by call site, tag or owner — as Linux's
//! `/proc/allocinfo` gives them per call site: what `snapshot --by` prints.
//!
//! Contract: every entry is in exactly one group, so the groups' pages and allocations add up
//! to the snapshot's (and to the per-PID totals) whatever the grouping.

use super::{Entry, Event, Site, Snapshot};
use serde::Serialize;
use std::collections::HashMap;

/// The label of entries that carry no site (a kernel that does not record them).
pub const NO_SITE: &str = "(no site)";

/// What entries are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The line that asked: the program's (`user_site`) for pages a program asked for, else the
    /// kernel's (`site`).
    Site,
    Tag,
    /// The owner PID (with its process name).
    Pid,
}

impl GroupBy {
    /// `site`, `tag` or `pid`.
    pub fn from_name(name: &str) -> Option<GroupBy> {
        match name {
            "site" => Some(GroupBy::Site),
            "tag" => Some(GroupBy::Tag),
            "pid" => Some(GroupBy::Pid),
            _ => None,
        }
    }
}

/// One group: its label, and the live allocations and pages in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    pub key: String,
    pub allocs: u64,
    pub pages: u64,
}

/// The site label of an allocation: its user site when a program asked, else its kernel site,
/// as `file:line function`; [`NO_SITE`] without either.
pub fn site_label(site: Option<&Site>, user_site: Option<&Site>) -> String {
    user_site
        .or(site)
        .map_or_else(|| NO_SITE.to_string(), Site::to_string)
}

impl Entry {
    /// [`site_label`] of this entry.
    pub fn site_label(&self) -> String {
        site_label(self.site.as_deref(), self.user_site.as_deref())
    }
}

impl Event {
    /// [`site_label`] of this event's allocation.
    pub fn site_label(&self) -> String {
        site_label(self.site.as_deref(), self.user_site.as_deref())
    }
}

impl Snapshot {
    /// The live entries grouped `by`, most pages first (ties by label).
    pub fn groups(&self, by: GroupBy) -> Vec<Group> {
        let names: HashMap<u32, String> = match by {
            GroupBy::Pid => self.pids().into_iter().map(|p| (p.pid, p.name)).collect(),
            _ => HashMap::new(),
        };
        let mut groups: HashMap<String, Group> = HashMap::new();
        for e in self.entries.iter() {
            let key = match by {
                GroupBy::Site => e.site_label(),
                GroupBy::Tag => e.tag.to_string(),
                GroupBy::Pid => format!(
                    "{} {}",
                    e.owner,
                    names.get(&e.owner).map_or("?", String::as_str)
                ),
            };
            let g = groups.entry(key).or_insert_with_key(|k| Group {
                key: k.clone(),
                allocs: 0,
                pages: 0,
            });
            g.allocs += 1;
            g.pages += e.npages;
        }
        let mut out: Vec<Group> = groups.into_values().collect();
        out.sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.key.cmp(&b.key)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::entry;
    use std::sync::Arc;

    fn site(file: &str, line: u32, function: &str) -> Option<Arc<Site>> {
        Some(Arc::new(Site {
            function: function.into(),
            file: file.into(),
            line,
        }))
    }

    fn snapshot() -> Snapshot {
        let mut kstack = entry(0, 0x8040_0000, 4, 3, "kstack");
        kstack.site = site("kernel/src/proc.rs", 242, "build");
        let mut heap = entry(1, 0x8050_0000, 3, 3, "alloc_pages");
        heap.site = site("kernel/src/syscall.rs", 160, "sys_alloc_pages");
        heap.user_site = site("kernel/user/src/bin/leak.rs", 21, "main");
        let mut heap2 = heap.clone();
        heap2.slot = 2;
        heap2.pa = 0x8060_0000;
        heap2.npages = 2;
        let mut root = entry(3, 0x8070_0000, 1, 0, "kernel_pagetable");
        root.site = site("kernel/src/mm/vm.rs", 85, "init_kernel");
        let bare = entry(4, 0x8080_0000, 1, 5, "alloc_pages");
        Snapshot {
            entries: Arc::new(vec![kstack, heap, heap2, root, bare]),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_programs_pages_group_under_its_own_line_the_kernels_under_the_kernel_line() {
        let g = snapshot().groups(GroupBy::Site);
        let keys: Vec<(&str, u64, u64)> = g
            .iter()
            .map(|g| (g.key.as_str(), g.allocs, g.pages))
            .collect();
        assert_eq!(
            keys,
            [
                ("kernel/user/src/bin/leak.rs:21 main", 2, 5),
                ("kernel/src/proc.rs:242 build", 1, 4),
                ("(no site)", 1, 1),
                ("kernel/src/mm/vm.rs:85 init_kernel", 1, 1),
            ]
        );
    }

    #[test]
    fn every_grouping_adds_up_to_the_per_pid_totals() {
        let s = snapshot();
        let pids = s.pids();
        let (allocs, pages) = (
            pids.iter().map(|p| p.allocs).sum::<u64>(),
            pids.iter().map(|p| p.pages).sum::<u64>(),
        );
        for by in [GroupBy::Site, GroupBy::Tag, GroupBy::Pid] {
            let g = s.groups(by);
            assert_eq!(g.iter().map(|g| g.allocs).sum::<u64>(), allocs, "{by:?}");
            assert_eq!(g.iter().map(|g| g.pages).sum::<u64>(), pages, "{by:?}");
        }
        let by_pid = s.groups(GroupBy::Pid);
        assert_eq!(by_pid[0].key, "3 ?");
        assert_eq!((by_pid[0].allocs, by_pid[0].pages), (3, 9));
    }
}
