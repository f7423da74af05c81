//! TUI application state: the latest snapshot, bounded history (per-PID page series, events,
//! leak reports), the current view, filter, prompt and cursors, and the key → state change +
//! `Action` logic. Per-view state lives beside it (`overview`, `allocations`, `pagemap`,
//! `debugger`), as do the filter (`filter`) and the prompt editor (`prompt`).
//!
//! No ratatui or terminal types here: everything is unit-testable with plain values. Time is
//! injected (`now: Instant` arguments); nothing reads the clock.

use super::allocations::SortKey;
use super::debugger::{breakpoint_prompt_command, DebugPane, SiteKind, SiteSource};
use super::filter::Filter;
use super::input::Key;
use super::overview::{overview_rows, PidRow};
use super::pagemap::{self, CellInfo, PageGrid};
use super::prompt::{Prompt, PromptEdit, PromptKind};
use crate::debugger::live::{DebugCommand, DebugReport};
use crate::model::{Entry, Event, LeakReport, LeakTracker, Site, Snapshot, KERNEL_PID};
use crate::source::{Capabilities, Origin, ReplayControl, Seek};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples kept per PID for the overview sparklines (and for free pages).
pub const HISTORY_LEN: usize = 60;
/// Events kept across snapshots (oldest dropped first).
pub const EVENT_HISTORY_LEN: usize = 5000;
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
    /// Connected, but the kernel has no tracker to read yet (still booting, or held by the
    /// debugger before it got there); `reason` says which.
    Waiting {
        reason: String,
    },
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

/// The TUI's whole state.
#[derive(Debug)]
pub struct App {
    pub view: View,
    /// What the data source is and can do; None until the event loop says.
    pub source: Option<Capabilities>,
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
    /// The open prompt, if any: `/` (filter) or the debugger view's `B` (break at a location).
    /// While it is open, keys edit it.
    pub prompt: Option<Prompt>,
    pub show_help: bool,
    /// One-line message for the footer (filter errors, reboot notices).
    pub status: Option<String>,
    /// The served gdb client's state (`held by gdb at FUNCTION FILE:LINE`, `gdb attached on
    /// ADDR`, `serving gdb on ADDR`); None when no gdb is served.
    pub gdb: Option<String>,
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
    /// The debugger pane: the debugger view's state.
    pub debugger: DebugPane,
    /// The timeline of a replayed recording (`tui --replay`); its keys drive it.
    pub replay: Option<ReplayControl>,
    /// The directory site files are relative to (`Source::source_root`); None: the current
    /// directory.
    pub source_root: Option<PathBuf>,
    /// One more than the highest hart any snapshot's process table put a process on (0: none
    /// yet, or the kernel records no harts). The table names no idle hart, so the header
    /// lists harts `0..harts_seen`.
    pub harts_seen: u32,
}

impl App {
    pub fn new(interval: Duration) -> App {
        App {
            view: View::Overview,
            source: None,
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
            prompt: None,
            show_help: false,
            status: None,
            gdb: None,
            overview_sel: 0,
            alloc_sel: 0,
            events_scroll: 0,
            page_cursor: 0,
            term_size: (80, 24),
            debugger: DebugPane::default(),
            replay: None,
            source_root: None,
            harts_seen: 0,
        }
    }

    /// Takes in the debugger's report (or error) for a command or a breakpoint stop; a new
    /// stop opens the debugger view.
    pub fn apply_debug_report(&mut self, result: Result<DebugReport, String>) {
        if self.debugger.apply(result) {
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
        if self.is_recorded() {
            // A recording's snapshot carries its position's recent events itself (it may be
            // a jump back): show those, not an accumulation.
            self.events.clear();
            self.leaks = LeakTracker::default();
            self.last_event_head = None;
            self.missed_events = 0;
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

        if let Some(h) = snap.procs.iter().filter_map(|p| p.hart).max() {
            self.harts_seen = self.harts_seen.max(h.saturating_add(1));
        }
        self.latest = Some(snap);
        self.clamp_cursors();
    }

    /// Hart → the process it runs as `name(pid)` (None: idle), per the latest snapshot, for
    /// harts `0..harts_seen` and every hart a debugger stop names; empty while no snapshot has
    /// put a process on a hart (a kernel that records no harts shows none).
    pub fn hart_processes(&self) -> Vec<(u32, Option<String>)> {
        let Some(snap) = &self.latest else {
            return Vec::new();
        };
        if self.harts_seen == 0 {
            return Vec::new();
        }
        let stop_harts = self.debugger.stop().map_or(0, |s| s.harts.len() as u32);
        (0..self.harts_seen.max(stop_harts))
            .map(|h| (h, snap.on_hart(h).map(|p| p.label())))
            .collect()
    }

    /// True when the data is generated (`tui --demo`), not read from a kernel.
    pub fn is_demo(&self) -> bool {
        self.source.is_some_and(|c| c.origin == Origin::Demo)
    }

    /// True when the data is a recording or a memory dump: no guest is there.
    pub fn is_recorded(&self) -> bool {
        self.source.is_some_and(|c| c.origin == Origin::Recorded)
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
        match &self.latest {
            Some(s) => overview_rows(s, |pid| self.history_of(pid)),
            None => Vec::new(),
        }
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
        self.sort.sort(&mut v);
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
        let ram_pages = self.latest.as_ref().map_or(0, |s| s.header.ram_pages);
        PageGrid::for_terminal(self.term_size, ram_pages)
    }

    /// Ownership of every cell of `grid` in the latest snapshot (`pagemap::page_cells`).
    /// Empty without a snapshot.
    pub fn page_cells(&self, grid: &PageGrid) -> Vec<CellInfo> {
        self.latest
            .as_ref()
            .map_or_else(Vec::new, |s| pagemap::page_cells(s, grid))
    }

    /// The allocations overlapping pages `[first, first + n)` (page indexes from `ram_base`)
    /// in the latest snapshot. Empty without a snapshot.
    pub fn entries_in_pages(&self, first: u64, n: u64) -> Vec<&Entry> {
        self.latest
            .as_ref()
            .map_or_else(Vec::new, |s| pagemap::entries_in_pages(s, first, n))
    }

    /// Carries out a key: changes state, returns what the event loop must do.
    pub fn handle_key(&mut self, key: Key) -> Action {
        if key == Key::CtrlC {
            return Action::Quit;
        }
        if let Some(prompt) = &mut self.prompt {
            match prompt.edit(key) {
                PromptEdit::Editing => {}
                PromptEdit::Cancelled => self.prompt = None,
                PromptEdit::Submitted(text) => {
                    let kind = prompt.kind;
                    self.prompt = None;
                    return self.submit_prompt(kind, &text);
                }
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
        if let Some(action) = self.replay_key(key) {
            return action;
        }
        if self.view == View::Allocations {
            match key {
                Key::Enter => return self.open_site(SiteKind::Kernel),
                Key::Char('u') => return self.open_site(SiteKind::User),
                _ => {}
            }
        }
        if self.view == View::Debugger {
            if let Some(shown) = &self.debugger.site {
                match key {
                    Key::Esc => {
                        self.debugger.site = None;
                        return Action::None;
                    }
                    Key::Char('u') => {
                        match shown.other() {
                            Some(other) => self.show_site(shown.sites.clone(), other),
                            None => {
                                let missing = match shown.shown {
                                    SiteKind::Kernel => SiteKind::User,
                                    SiteKind::User => SiteKind::Kernel,
                                };
                                self.status =
                                    Some(format!("this allocation has no {}", missing.label()));
                            }
                        }
                        return Action::None;
                    }
                    _ => {}
                }
            }
            if key == Key::Char('B') {
                self.prompt = Some(Prompt::new(PromptKind::Breakpoint, ""));
                return Action::None;
            }
            if let Some(cmd) = self.debugger.command_for(key) {
                self.debugger.busy = true;
                self.debugger.site = None; // back to what the command shows
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
                let text = self.filter.as_ref().map(Filter::label).unwrap_or_default();
                self.prompt = Some(Prompt::new(PromptKind::Filter, text));
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

    /// Opens the selected allocation's `kind` site in the debugger view (allocations view,
    /// Enter: kernel site, `u`: user site). Without a selection nothing happens.
    fn open_site(&mut self, kind: SiteKind) -> Action {
        let sel = self.alloc_sel;
        let Some(e) = self.visible_entries().get(sel).copied() else {
            return Action::None;
        };
        let sites = (e.site.clone(), e.user_site.clone());
        self.show_site(sites, kind);
        Action::None
    }

    /// Shows `kind` of `sites` in the debugger view, or says in the footer why it cannot.
    fn show_site(&mut self, sites: (Option<Arc<Site>>, Option<Arc<Site>>), kind: SiteKind) {
        match SiteSource::open(sites, kind, self.source_root.as_deref()) {
            Ok(site) => {
                if site.lines.is_empty() {
                    self.status = Some(format!(
                        "{} is not on this machine (looked under {})",
                        site.site().file,
                        self.source_root
                            .as_deref()
                            .map_or_else(|| ".".into(), |r| r.display().to_string())
                    ));
                }
                self.debugger.site = Some(site);
                self.view = View::Debugger;
            }
            Err(msg) => self.status = Some(msg),
        }
    }

    /// A replay's timeline keys: play/pause, one event back/forward, speed, jump to a time,
    /// rewind, end. None for other keys, and without a replay. The sampler carries out the
    /// move at its next sample, which `SetPaused(false)` asks for at once.
    fn replay_key(&mut self, key: Key) -> Option<Action> {
        let control = self.replay.as_ref()?;
        match key {
            Key::Char(' ') | Key::Char('p') => control.toggle_play(),
            Key::Char('.') => control.seek(Seek::Events(1)),
            Key::Char(',') => control.seek(Seek::Events(-1)),
            Key::Char(']') => control.change_speed(true),
            Key::Char('[') => control.change_speed(false),
            Key::Char('r') => control.seek(Seek::Start),
            Key::Char('G') => control.seek(Seek::End),
            Key::Char('g') => {
                self.prompt = Some(Prompt::new(PromptKind::Seek, ""));
                return Some(Action::None);
            }
            _ => return None,
        }
        Some(Action::SetPaused(false))
    }

    /// Carries out a submitted prompt's `text`: a filter replaces the current one (or, if it
    /// does not parse, leaves it and says why); a breakpoint command goes to the debugger
    /// unless it is empty or a command is in flight.
    fn submit_prompt(&mut self, kind: PromptKind, text: &str) -> Action {
        match kind {
            PromptKind::Filter => match Filter::parse(text) {
                Ok(f) => {
                    self.filter = f;
                    self.status = None;
                    self.alloc_sel = 0;
                    self.events_scroll = 0;
                }
                Err(msg) => self.status = Some(format!("filter: {msg}")),
            },
            PromptKind::Seek => {
                let Some(control) = &self.replay else {
                    return Action::None;
                };
                match text.trim() {
                    "end" => control.seek(Seek::End),
                    "start" | "0" => control.seek(Seek::Start),
                    t => match humantime::parse_duration(t) {
                        Ok(d) => control.seek(Seek::Time(d)),
                        Err(e) => {
                            self.status =
                                Some(format!("jump to `{t}`: {e} (e.g. 12s, 1m20s, end)"));
                            return Action::None;
                        }
                    },
                }
                return Action::SetPaused(false);
            }
            PromptKind::Breakpoint => {
                let text = text.trim();
                if !text.is_empty() && !self.debugger.busy {
                    self.debugger.busy = true;
                    self.debugger.site = None;
                    return Action::Debug(breakpoint_prompt_command(text));
                }
            }
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
                self.page_cursor = self.page_grid().move_cursor(self.page_cursor, dx, dy);
            }
        }
    }

    fn clamp_cursors(&mut self) {
        let ram = self.latest.as_ref().map_or(0, |s| s.header.ram_pages);
        self.page_cursor = self.page_grid().clamp_cursor(self.page_cursor, ram);
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
