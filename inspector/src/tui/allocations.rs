//! The allocations view's order (no ratatui): the sort keys `s` cycles through and the sort
//! each one means. `views::allocations` draws the sorted list.

use crate::model::Entry;

/// Sort order of the allocations view. `s` cycles through them in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Physical address, ascending.
    Pa,
    /// Pages, largest first (ties by pa).
    Pages,
    /// Owner PID ascending (ties by pa).
    Owner,
    /// Tag alphabetically (ties by pa).
    Tag,
    /// Allocation time, oldest first (ties by pa).
    Age,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        match self {
            SortKey::Pa => SortKey::Pages,
            SortKey::Pages => SortKey::Owner,
            SortKey::Owner => SortKey::Tag,
            SortKey::Tag => SortKey::Age,
            SortKey::Age => SortKey::Pa,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Pa => "pa",
            SortKey::Pages => "pages",
            SortKey::Owner => "owner",
            SortKey::Tag => "tag",
            SortKey::Age => "age",
        }
    }

    /// Sorts `entries` in this order.
    pub fn sort(self, entries: &mut [&Entry]) {
        match self {
            SortKey::Pa => entries.sort_by_key(|e| e.pa),
            SortKey::Pages => entries.sort_by(|a, b| b.npages.cmp(&a.npages).then(a.pa.cmp(&b.pa))),
            SortKey::Owner => entries.sort_by_key(|e| (e.owner, e.pa)),
            SortKey::Tag => entries.sort_by(|a, b| a.tag.cmp(&b.tag).then(a.pa.cmp(&b.pa))),
            SortKey::Age => entries.sort_by_key(|e| (e.time, e.pa)),
        }
    }
}
