//! TUI application state: the latest snapshot, bounded history (per-PID page series, events,
//! leak reports), view/sort/filter/cursor state, and the key → state change + `Action` logic.
//!
//! No ratatui or terminal types here: everything is unit-testable with plain values. Time is
//! injected (`now: Instant` arguments); nothing reads the clock.

use super::debugger::DebugPane;
use super::input::Key;
use crate::debugger::live::{DebugCommand, DebugReport};
use crate::model::{Entry, Event, EventKind, PidSummary, ProcState, Snapshot, KERNEL_PID};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Samples kept per PID for the overview sparklines (and for free pages).
pub const HISTORY_LEN: usize = 60;
/// Events kept across snapshots (oldest dropped first).
pub const EVENT_HISTORY_LEN: usize = 5000;
/// Leak reports kept (oldest dropped first).
pub const LEAK_HISTORY_LEN: usize = 500;
/// Refresh intervals `+`/`-` step through.
pub const INTERVAL_STEPS: [Duration; 8] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];
/// Page size of the tracked RAM.
pub const PAGE_SIZE: u64 = 4096;
/// Rows the screen layout uses around the page-map grid: header, tabs and footer lines (3),
/// the body block's borders (2) and the legend/cursor-info lines (3). Columns: borders (2).
/// `views::pagemap` draws with exactly this layout (a rendering test checks it).
pub const PAGEMAP_CHROME: (u16, u16) = (2, 8);

/// Which view the body shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Allocations,
    PageMap,
    Events,
    /// The debugger (key `5`; opens by itself at a breakpoint). Not in the Tab cycle.
    Debugger,
}

impl View {
    pub const ALL: [View; 4] = [
        View::Overview,
        View::Allocations,
        View::PageMap,
        View::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Allocations => "Allocations",
            View::PageMap => "Page map",
            View::Events => "Leaks & events",
            View::Debugger => "Debugger",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// The link to the guest, as the sampler thread reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// No snapshot yet, no error yet.
    Connecting,
    Connected,
    /// The last sample or reconnect failed; `reason` is the error's one-line text.
    Disconnected {
        reason: String,
    },
    /// A reconnect attempt (1-based) is under way after `reason`.
    Reconnecting {
        attempt: u32,
        reason: String,
    },
}

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
}

/// A filter on allocations and events, parsed from the `/` prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `pid:N`: owner is N.
    Pid(u32),
    /// `tag:T`: tag equals T (case-insensitive).
    Tag(String),
    /// Anything else: case-insensitive substring of the tag or the owner's process name.
    Text(String),
}

impl Filter {
    /// Parses prompt text. `Ok(None)` for empty text (clears the filter); `Err` names the problem.
    pub fn parse(text: &str) -> Result<Option<Filter>, String> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if let Some(p) = t.strip_prefix("pid:") {
            return p
                .trim()
                .parse::<u32>()
                .map(|n| Some(Filter::Pid(n)))
                .map_err(|_| format!("not a pid: {:?} (try pid:7)", p.trim()));
        }
        if let Some(tag) = t.strip_prefix("tag:") {
            let tag = tag.trim();
            if tag.is_empty() {
                return Err("empty tag (try tag:heap)".into());
            }
            return Ok(Some(Filter::Tag(tag.to_lowercase())));
        }
        Ok(Some(Filter::Text(t.to_lowercase())))
    }

    /// Whether an allocation or event of `owner` with `tag` passes; `name` is the owner's
    /// process name when known.
    pub fn matches(&self, owner: u32, tag: &str, name: Option<&str>) -> bool {
        match self {
            Filter::Pid(p) => owner == *p,
            Filter::Tag(t) => tag.eq_ignore_ascii_case(t),
            Filter::Text(s) => {
                tag.to_lowercase().contains(s) || name.is_some_and(|n| n.to_lowercase().contains(s))
            }
        }
    }

    pub fn label(&self) -> String {
        match self {
            Filter::Pid(p) => format!("pid:{p}"),
            Filter::Tag(t) => format!("tag:{t}"),
            Filter::Text(s) => s.clone(),
        }
    }
}

/// The command for the debugger's `B` prompt: `enable N`, `disable N`, `delete N`, or else a
/// location to toggle (`LOCATION [if CONDITION]`).
pub fn breakpoint_prompt_command(text: &str) -> DebugCommand {
    let mut words = text.split_whitespace();
    let (verb, id) = (
        words.next(),
        words.next().and_then(|w| w.parse::<u32>().ok()),
    );
    match (verb, id, words.next()) {
        (Some("enable"), Some(id), None) => DebugCommand::SetEnabled { id, enabled: true },
        (Some("disable"), Some(id), None) => DebugCommand::SetEnabled { id, enabled: false },
        (Some("delete"), Some(id), None) => DebugCommand::Remove(id),
        _ => DebugCommand::ToggleBreakpoint(text.to_string()),
    }
}

/// What the event loop must do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Sample at this interval from now on (the app already shows it).
    SetInterval(Duration),
    /// Stop (true) or resume (false) sampling; the guest keeps running either way.
    SetPaused(bool),
    /// Send this command to the data source's debugger.
    Debug(DebugCommand),
}

/// Pages of one tag in a leak report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagLeak {
    pub tag: String,
    pub allocs: u64,
    pub pages: u64,
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

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Groups `ExitReclaim` events into per-exit reports.
///
/// Contract: reclaims of pid P belong to the same exit until any other event of P is seen
/// (an `Alloc` means P, or a new process reusing P, is alive again). Events of other PIDs in
/// between do not split an exit. Reports are kept in order of their first reclaim, bounded by
/// `LEAK_HISTORY_LEN`.
#[derive(Clone, Debug, Default)]
pub struct LeakTracker {
    reports: VecDeque<LeakReport>,
}

impl LeakTracker {
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
                    open: true,
                });
                self.reports.len() - 1
            }
        };
        let r = &mut self.reports[idx];
        r.allocs += 1;
        r.pages += ev.npages;
        match r.tags.iter_mut().find(|t| t.tag == ev.tag) {
            Some(t) => {
                t.allocs += 1;
                t.pages += ev.npages;
            }
            None => r.tags.push(TagLeak {
                tag: ev.tag.clone(),
                allocs: 1,
                pages: ev.npages,
            }),
        }
        r.tags
            .sort_by(|a, b| b.pages.cmp(&a.pages).then_with(|| a.tag.cmp(&b.tag)));
    }

    /// Reports, oldest first.
    pub fn reports(&self) -> impl DoubleEndedIterator<Item = &LeakReport> + ExactSizeIterator {
        self.reports.iter()
    }
}

/// How the page map divides RAM into screen cells: `pages_per_cell` consecutive pages per cell,
/// `cols` cells per row, row-major from `ram_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageGrid {
    pub cols: u16,
    pub rows: u16,
    pub pages_per_cell: u64,
    /// Cells actually used: ceil(ram_pages / pages_per_cell).
    pub cells: u64,
}

impl PageGrid {
    /// The densest grid of at most `width` × `height` cells that shows all `ram_pages`.
    /// A zero-sized area or no RAM gives a grid with no cells.
    pub fn fit(width: u16, height: u16, ram_pages: u64) -> PageGrid {
        let area = u64::from(width) * u64::from(height);
        if area == 0 || ram_pages == 0 {
            return PageGrid {
                cols: 0,
                rows: 0,
                pages_per_cell: 1,
                cells: 0,
            };
        }
        let pages_per_cell = ram_pages.div_ceil(area).max(1);
        let cells = ram_pages.div_ceil(pages_per_cell);
        let cols = (u64::from(width)).min(cells) as u16;
        let rows = cells.div_ceil(u64::from(cols)) as u16;
        PageGrid {
            cols,
            rows,
            pages_per_cell,
            cells,
        }
    }
}

/// What the page map knows about one cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellInfo {
    /// Pages of the cell covered by some allocation.
    pub owned: u64,
    /// Pages in the cell (the last cell may be short).
    pub pages: u64,
    /// Owner with the most pages in the cell (lowest pid on ties), if any.
    pub owner: Option<u32>,
    /// More than one owner has pages here.
    pub mixed: bool,
    /// Pages of the cell below the allocator's base (firmware, kernel image): never allocated.
    pub reserved: u64,
}

/// One overview row for a PID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidRow {
    pub summary: PidSummary,
    /// Pages per sample, oldest first, at most `HISTORY_LEN`.
    pub history: Vec<u64>,
}

/// The TUI's whole state.
#[derive(Debug)]
pub struct App {
    pub view: View,
    pub connection: Connection,
    /// Live updates paused by the user.
    pub paused: bool,
    pub interval: Duration,
    /// The latest snapshot (its `events` are also in `events`).
    pub latest: Option<Snapshot>,
    pub snapshots_seen: u64,
    pub last_snapshot_at: Option<Instant>,
    /// Share of wall time the guest ran over the last sample period, 0.0–1.0.
    pub running_share: Option<f64>,
    /// Events across snapshots, oldest first, at most `EVENT_HISTORY_LEN`.
    pub events: VecDeque<Event>,
    /// Sum of `missed_events` over all snapshots.
    pub missed_events: u64,
    pub leaks: LeakTracker,
    /// Pages per PID over the last `HISTORY_LEN` samples; PIDs absent from the latest
    /// snapshot are dropped.
    history: BTreeMap<u32, VecDeque<u64>>,
    /// Free pages over the last `HISTORY_LEN` samples.
    pub free_history: VecDeque<u64>,
    /// Last known name of every PID seen in a process table.
    names: HashMap<u32, String>,
    /// `event_head` of the latest snapshot (for de-duplication and reboot detection).
    last_event_head: Option<u64>,
    pub sort: SortKey,
    pub filter: Option<Filter>,
    /// `Some(text)` while the `/` prompt is open.
    pub filter_input: Option<String>,
    /// `Some(text)` while the debugger view's `B` prompt (break at a location) is open.
    pub break_input: Option<String>,
    pub show_help: bool,
    /// One-line message for the footer (filter errors, reboot notices).
    pub status: Option<String>,
    /// Selected row in the overview (index into `overview_rows()`).
    pub overview_sel: usize,
    /// Selected row in the allocations view (index into `visible_entries()`).
    pub alloc_sel: usize,
    /// Scroll of the events view's event list: rows skipped from the newest.
    pub events_scroll: usize,
    /// Page-map cursor: page index from `ram_base`.
    pub page_cursor: u64,
    /// Terminal size, as last reported by the event loop.
    pub term_size: (u16, u16),
    /// The debugger view's state.
    pub debug: DebugPane,
}

impl App {
    pub fn new(interval: Duration) -> App {
        App {
            view: View::Overview,
            connection: Connection::Connecting,
            paused: false,
            interval,
            latest: None,
            snapshots_seen: 0,
            last_snapshot_at: None,
            running_share: None,
            events: VecDeque::new(),
            missed_events: 0,
            leaks: LeakTracker::default(),
            history: BTreeMap::new(),
            free_history: VecDeque::new(),
            names: HashMap::new(),
            last_event_head: None,
            sort: SortKey::Pa,
            filter: None,
            filter_input: None,
            break_input: None,
            show_help: false,
            status: None,
            overview_sel: 0,
            alloc_sel: 0,
            events_scroll: 0,
            page_cursor: 0,
            term_size: (80, 24),
            debug: DebugPane::default(),
        }
    }

    /// Takes in the debugger's report (or error) for a command or a breakpoint stop; a new
    /// stop opens the debugger view.
    pub fn apply_debug(&mut self, result: Result<DebugReport, String>) {
        if self.debug.apply(result) {
            self.view = View::Debugger;
        }
    }

    /// Takes in a new snapshot sampled at `now`: updates history, events, leak reports and
    /// the running share, and marks the connection up.
    pub fn apply_snapshot(&mut self, snap: Snapshot, now: Instant) {
        // Running share: the guest ran for the period minus the halt.
        let period = match self.last_snapshot_at {
            Some(prev) if now > prev => now - prev,
            _ => self.interval,
        };
        let period_us = period.as_micros().max(1) as f64;
        self.running_share = Some((1.0 - snap.pause_us as f64 / period_us).clamp(0.0, 1.0));
        self.last_snapshot_at = Some(now);
        self.snapshots_seen += 1;
        self.connection = Connection::Connected;

        for p in &snap.procs {
            self.names.insert(p.pid, p.name.clone());
        }

        // Events: a reader that reconnects may resend events still in the ring; skip what we
        // have. An event head that went backwards means the guest rebooted: start over.
        let head = snap.header.event_head;
        let mut known_below = self.last_event_head.unwrap_or(0);
        if let Some(prev) = self.last_event_head {
            if head < prev {
                self.status = Some(format!(
                    "guest restarted (event sequence {prev} → {head}); history continues"
                ));
                known_below = 0;
            }
        }
        for ev in &snap.events {
            if ev.seq < known_below {
                continue;
            }
            let name = self.names.get(&ev.owner).map(String::as_str);
            self.leaks.push(ev, name);
            if self.events.len() == EVENT_HISTORY_LEN {
                self.events.pop_front();
            }
            self.events.push_back(ev.clone());
        }
        self.last_event_head = Some(head);
        self.missed_events += snap.missed_events;

        // Per-PID page series.
        let pids = snap.pids();
        self.history
            .retain(|pid, _| pids.iter().any(|p| p.pid == *pid));
        for p in &pids {
            push_bounded(self.history.entry(p.pid).or_default(), p.pages, HISTORY_LEN);
        }
        push_bounded(&mut self.free_history, snap.header.free_pages, HISTORY_LEN);

        self.latest = Some(snap);
        self.clamp_cursors();
    }

    /// Records a connection change reported by the sampler.
    pub fn set_connection(&mut self, c: Connection) {
        self.connection = c;
    }

    /// Records the terminal size (the page map's cursor moves depend on it).
    pub fn set_terminal_size(&mut self, width: u16, height: u16) {
        self.term_size = (width, height);
        self.clamp_cursors();
    }

    /// Pages of `pid` over the last samples, oldest first (empty if unknown).
    /// The kernel's timer frequency from the latest snapshot (0: unknown).
    pub fn timebase_hz(&self) -> u64 {
        self.latest.as_ref().map_or(0, |s| s.header.timebase_hz)
    }

    pub fn history_of(&self, pid: u32) -> Vec<u64> {
        self.history
            .get(&pid)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Last known process name of `pid`.
    pub fn name_of(&self, pid: u32) -> Option<&str> {
        if pid == KERNEL_PID {
            return Some("kernel");
        }
        self.names.get(&pid).map(String::as_str)
    }

    /// Overview rows: every PID of the latest snapshot; the kernel (pid 0) always, first.
    pub fn overview_rows(&self) -> Vec<PidRow> {
        let Some(s) = &self.latest else {
            return Vec::new();
        };
        let mut pids = s.pids();
        if pids.first().is_none_or(|p| p.pid != KERNEL_PID) {
            pids.insert(
                0,
                PidSummary {
                    pid: KERNEL_PID,
                    name: "kernel".into(),
                    state: ProcState::Kernel,
                    allocs: 0,
                    pages: 0,
                    tags: Vec::new(),
                },
            );
        }
        pids.into_iter()
            .map(|summary| PidRow {
                history: self.history_of(summary.pid),
                summary,
            })
            .collect()
    }

    /// Live entries that pass the filter, in the current sort order.
    pub fn visible_entries(&self) -> Vec<&Entry> {
        let Some(s) = &self.latest else {
            return Vec::new();
        };
        let mut v: Vec<&Entry> = s
            .entries
            .iter()
            .filter(|e| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| f.matches(e.owner, &e.tag, self.name_of(e.owner)))
            })
            .collect();
        match self.sort {
            SortKey::Pa => v.sort_by_key(|e| e.pa),
            SortKey::Pages => v.sort_by(|a, b| b.npages.cmp(&a.npages).then(a.pa.cmp(&b.pa))),
            SortKey::Owner => v.sort_by_key(|e| (e.owner, e.pa)),
            SortKey::Tag => v.sort_by(|a, b| a.tag.cmp(&b.tag).then(a.pa.cmp(&b.pa))),
            SortKey::Age => v.sort_by_key(|e| (e.time, e.pa)),
        }
        v
    }

    /// Events that pass the filter, newest first.
    pub fn visible_events(&self) -> Vec<&Event> {
        self.events
            .iter()
            .rev()
            .filter(|e| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| f.matches(e.owner, &e.tag, self.name_of(e.owner)))
            })
            .collect()
    }

    /// Leak reports that pass the filter (`pid:N` its pid, `tag:T` any of its tags, text its
    /// name or a tag), newest first.
    pub fn visible_leaks(&self) -> Vec<&LeakReport> {
        self.leaks
            .reports()
            .rev()
            .filter(|r| {
                self.filter.as_ref().is_none_or(|f| {
                    r.tags
                        .iter()
                        .any(|t| f.matches(r.pid, &t.tag, Some(&r.name)))
                })
            })
            .collect()
    }

    /// The page-map grid for the current terminal size and the latest snapshot's RAM.
    pub fn page_grid(&self) -> PageGrid {
        let (w, h) = self.term_size;
        let ram_pages = self.latest.as_ref().map_or(0, |s| s.header.ram_pages);
        PageGrid::fit(
            w.saturating_sub(PAGEMAP_CHROME.0),
            h.saturating_sub(PAGEMAP_CHROME.1),
            ram_pages,
        )
    }

    /// Ownership of every cell of `grid`. Entries outside `[ram_base, ram_base + ram_pages)`
    /// are clipped. Empty without a snapshot.
    pub fn page_cells(&self, grid: &PageGrid) -> Vec<CellInfo> {
        let Some(s) = &self.latest else {
            return Vec::new();
        };
        let (base, ram) = (s.header.ram_base, s.header.ram_pages);
        let reserved_pages = s.header.alloc_base.saturating_sub(base) / PAGE_SIZE;
        let ppc = grid.pages_per_cell;
        let mut per_cell: Vec<Vec<(u32, u64)>> = vec![Vec::new(); grid.cells as usize];
        for e in &s.entries {
            if e.pa < base {
                continue;
            }
            let first = (e.pa - base) / PAGE_SIZE;
            let end = first.saturating_add(e.npages).min(ram);
            let mut p = first;
            while p < end {
                let cell = p / ppc;
                let cell_end = ((cell + 1) * ppc).min(end);
                let Some(owners) = per_cell.get_mut(cell as usize) else {
                    break; // a grid made for less RAM than this snapshot has
                };
                match owners.iter_mut().find(|(o, _)| *o == e.owner) {
                    Some((_, n)) => *n += cell_end - p,
                    None => owners.push((e.owner, cell_end - p)),
                }
                p = cell_end;
            }
        }
        per_cell
            .into_iter()
            .enumerate()
            .map(|(i, owners)| {
                let start = i as u64 * ppc;
                let pages = ppc.min(ram.saturating_sub(start));
                let owner = owners
                    .iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                    .map(|(o, _)| *o);
                CellInfo {
                    owned: owners.iter().map(|(_, n)| n).sum(),
                    pages,
                    owner,
                    mixed: owners.len() > 1,
                    reserved: reserved_pages.saturating_sub(start).min(pages),
                }
            })
            .collect()
    }

    /// The allocations overlapping pages `[first, first + n)` (page indexes from `ram_base`).
    pub fn entries_in_pages(&self, first: u64, n: u64) -> Vec<&Entry> {
        let Some(s) = &self.latest else {
            return Vec::new();
        };
        let base = s.header.ram_base;
        let lo = base.saturating_add(first.saturating_mul(PAGE_SIZE));
        let hi = lo.saturating_add(n.saturating_mul(PAGE_SIZE));
        let mut v: Vec<&Entry> = s
            .entries
            .iter()
            .filter(|e| e.pa < hi && e.pa.saturating_add(e.npages * PAGE_SIZE) > lo)
            .collect();
        v.sort_by_key(|e| e.pa);
        v
    }

    /// Carries out a key: changes state, returns what the event loop must do.
    pub fn handle_key(&mut self, key: Key) -> Action {
        if key == Key::CtrlC {
            return Action::Quit;
        }
        if let Some(input) = &mut self.break_input {
            match key {
                Key::Esc => self.break_input = None,
                Key::Enter => {
                    let text = self.break_input.take().unwrap_or_default();
                    let text = text.trim();
                    if !text.is_empty() && !self.debug.busy {
                        self.debug.busy = true;
                        return Action::Debug(breakpoint_prompt_command(text));
                    }
                }
                Key::Backspace => {
                    input.pop();
                }
                Key::Char(c) => input.push(c),
                _ => {}
            }
            return Action::None;
        }
        if let Some(input) = &mut self.filter_input {
            match key {
                Key::Esc => self.filter_input = None,
                Key::Enter => {
                    let text = self.filter_input.take().unwrap_or_default();
                    match Filter::parse(&text) {
                        Ok(f) => {
                            self.filter = f;
                            self.status = None;
                            self.alloc_sel = 0;
                            self.events_scroll = 0;
                        }
                        Err(msg) => self.status = Some(format!("filter: {msg}")),
                    }
                }
                Key::Backspace => {
                    input.pop();
                }
                Key::Char(c) => input.push(c),
                _ => {}
            }
            return Action::None;
        }
        if self.show_help {
            match key {
                Key::Char('q') => return Action::Quit,
                Key::Esc | Key::Char('?') | Key::Enter => self.show_help = false,
                _ => {}
            }
            return Action::None;
        }
        if self.view == View::Debugger {
            if key == Key::Char('B') {
                self.break_input = Some(String::new());
                return Action::None;
            }
            if let Some(cmd) = self.debug.command_for(key) {
                self.debug.busy = true;
                return Action::Debug(cmd);
            }
        }
        match key {
            Key::Char('q') => return Action::Quit,
            Key::Char('?') => self.show_help = true,
            Key::Char('5') => self.view = View::Debugger,
            // Esc clears the footer message first, then the filter.
            Key::Esc if self.status.take().is_none() => self.filter = None,
            Key::Tab => self.view = View::ALL[(self.view.index() + 1) % View::ALL.len()],
            Key::BackTab => self.view = View::ALL[(self.view.index() + 3) % View::ALL.len()],
            Key::Char(c @ '1'..='4') => self.view = View::ALL[c as usize - '1' as usize],
            Key::Char('p') | Key::Char(' ') => {
                self.paused = !self.paused;
                return Action::SetPaused(self.paused);
            }
            Key::Char('+') | Key::Char('=') => return self.step_interval(1),
            Key::Char('-') => return self.step_interval(-1),
            Key::Char('s') => {
                self.sort = self.sort.next();
                self.alloc_sel = 0;
            }
            Key::Char('/') => {
                self.filter_input =
                    Some(self.filter.as_ref().map(Filter::label).unwrap_or_default());
            }
            Key::Enter if self.view == View::Overview => {
                if let Some(row) = self.overview_rows().get(self.overview_sel) {
                    self.filter = Some(Filter::Pid(row.summary.pid));
                    self.view = View::Allocations;
                    self.alloc_sel = 0;
                }
            }
            Key::Up => self.move_cursor(0, -1),
            Key::Down => self.move_cursor(0, 1),
            Key::Left => self.move_cursor(-1, 0),
            Key::Right => self.move_cursor(1, 0),
            Key::PageUp => self.move_cursor(0, -10),
            Key::PageDown => self.move_cursor(0, 10),
            // Home/End: first/last row of a list; first/last cell of the page map.
            Key::Home if self.view == View::PageMap => self.move_cursor(i64::MIN / 4, 0),
            Key::End if self.view == View::PageMap => self.move_cursor(i64::MAX / 4, 0),
            Key::Home => self.move_cursor(0, i64::MIN / 4),
            Key::End => self.move_cursor(0, i64::MAX / 4),
            _ => {}
        }
        Action::None
    }

    /// Moves to the next longer (`dir` > 0) or shorter interval step.
    fn step_interval(&mut self, dir: i32) -> Action {
        let next = if dir > 0 {
            INTERVAL_STEPS.iter().find(|d| **d > self.interval)
        } else {
            INTERVAL_STEPS.iter().rev().find(|d| **d < self.interval)
        };
        match next {
            Some(d) => {
                self.interval = *d;
                Action::SetInterval(*d)
            }
            None => Action::None,
        }
    }

    /// Moves the current view's cursor by `dx` columns / `dy` rows, clamped.
    fn move_cursor(&mut self, dx: i64, dy: i64) {
        fn step(v: usize, d: i64, len: usize) -> usize {
            (v as i64)
                .saturating_add(d)
                .clamp(0, len.saturating_sub(1) as i64) as usize
        }
        match self.view {
            View::Overview => {
                self.overview_sel = step(self.overview_sel, dy, self.overview_rows().len())
            }
            View::Allocations => {
                self.alloc_sel = step(self.alloc_sel, dy, self.visible_entries().len())
            }
            View::Events => {
                self.events_scroll = step(self.events_scroll, dy, self.visible_events().len())
            }
            View::Debugger => {}
            View::PageMap => {
                let g = self.page_grid();
                if g.cells == 0 {
                    return;
                }
                // Vertical moves keep the column and stop at the first/last row that has a
                // cell there; horizontal moves run through rows and stop at the ends.
                let (cell, cols, last) = (
                    self.page_cursor / g.pages_per_cell,
                    u64::from(g.cols),
                    g.cells - 1,
                );
                let cell = if dy > 0 {
                    cell + dy.unsigned_abs().min((last - cell) / cols) * cols
                } else if dy < 0 {
                    cell - dy.unsigned_abs().min(cell / cols) * cols
                } else if dx > 0 {
                    cell.saturating_add(dx.unsigned_abs()).min(last)
                } else {
                    cell.saturating_sub(dx.unsigned_abs())
                };
                self.page_cursor = cell * g.pages_per_cell;
            }
        }
    }

    fn clamp_cursors(&mut self) {
        let ram = self.latest.as_ref().map_or(0, |s| s.header.ram_pages);
        self.page_cursor = self.page_cursor.min(ram.saturating_sub(1));
        let g = self.page_grid();
        if g.pages_per_cell > 0 {
            self.page_cursor -= self.page_cursor % g.pages_per_cell;
        }
        let n = self.overview_rows().len();
        self.overview_sel = self.overview_sel.min(n.saturating_sub(1));
        let n = self.visible_entries().len();
        self.alloc_sel = self.alloc_sel.min(n.saturating_sub(1));
    }
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}
