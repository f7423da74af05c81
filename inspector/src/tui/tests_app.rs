//! Unit tests of the TUI state (`app`), key mapping (`input`), the sampler state machine
//! (`run::SampleLoop`) and `DemoSource`. No terminal, no sleeping: time is injected.

use super::allocations::SortKey;
use super::app::*;
use super::filter::Filter;
use super::input::{from_crossterm, Key};
use super::run::{backoff, Msg, SampleLoop, FIRST_BACKOFF, MAX_BACKOFF};
use crate::debugger::live::NoDebugger;
use crate::model::tests::{entry, event as ev, sample};
use crate::model::{EventKind, Snapshot};
use crate::source::{DemoSource, Source};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::time::{Duration, Instant};

fn app_with(s: Snapshot) -> App {
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(s, Instant::now());
    app
}

fn slots(app: &App) -> Vec<usize> {
    app.visible_entries().iter().map(|e| e.slot).collect()
}

/// `sample()` with distinct times, sizes and tags so every sort key gives its own order.
fn sortable() -> Snapshot {
    let mut s = sample();
    // slot: pa, pages, owner, tag; time = slot except where set
    s.entries = std::sync::Arc::new(vec![
        entry(0, 0x8030_0000, 4, 0, "kstack"),
        entry(1, 0x8030_9000, 1, 1, "page_table"),
        entry(2, 0x8030_5000, 2, 7, "heap"),
        entry(4, 0x8030_7000, 3, 7, "alloc_pages"),
        entry(5, 0x8030_4000, 6, 3, "user_stack"),
    ]);
    std::sync::Arc::make_mut(&mut s.entries)[0].time = 50;
    std::sync::Arc::make_mut(&mut s.entries)[3].time = 1;
    s
}

#[test]
fn sort_by_each_key() {
    let mut app = app_with(sortable());
    assert_eq!(app.sort, SortKey::Pa);
    assert_eq!(slots(&app), [0, 5, 2, 4, 1]);
    app.handle_key(Key::Char('s'));
    assert_eq!(app.sort, SortKey::Pages);
    assert_eq!(slots(&app), [5, 0, 4, 2, 1]);
    app.handle_key(Key::Char('s'));
    assert_eq!(app.sort, SortKey::Owner);
    assert_eq!(slots(&app), [0, 1, 5, 2, 4]);
    app.handle_key(Key::Char('s'));
    assert_eq!(app.sort, SortKey::Tag);
    assert_eq!(slots(&app), [4, 2, 0, 1, 5]);
    app.handle_key(Key::Char('s'));
    assert_eq!(app.sort, SortKey::Age);
    assert_eq!(slots(&app), [4, 1, 2, 5, 0]);
    app.handle_key(Key::Char('s'));
    assert_eq!(app.sort, SortKey::Pa);
}

fn type_filter(app: &mut App, text: &str) {
    assert_eq!(app.handle_key(Key::Char('/')), Action::None);
    // The prompt starts with the current filter: clear it.
    while app.prompt.as_ref().is_some_and(|p| !p.text().is_empty()) {
        app.handle_key(Key::Backspace);
    }
    for c in text.chars() {
        app.handle_key(Key::Char(c));
    }
    app.handle_key(Key::Enter);
}

#[test]
fn filter_by_pid_tag_and_text() {
    let mut app = app_with(sortable());
    type_filter(&mut app, "pid:7");
    assert_eq!(app.filter, Some(Filter::Pid(7)));
    assert_eq!(slots(&app), [2, 4]);
    type_filter(&mut app, "tag:HEAP");
    assert_eq!(slots(&app), [2]);
    // Free text matches tags and process names ("shell" is pid 1's name).
    type_filter(&mut app, "stack");
    assert_eq!(slots(&app), [0, 5]);
    type_filter(&mut app, "SHEL");
    assert_eq!(slots(&app), [1]);
    // Keys typed into the prompt do not act as commands.
    type_filter(&mut app, "q");
    assert_eq!(app.view, View::Overview);
    assert!(slots(&app).is_empty());
    // Empty filter clears; Esc outside the prompt clears too.
    type_filter(&mut app, "");
    assert_eq!(app.filter, None);
    assert_eq!(slots(&app).len(), 5);
    type_filter(&mut app, "pid:1");
    app.handle_key(Key::Esc);
    assert_eq!(app.filter, None);
}

#[test]
fn bad_filter_keeps_old_one_and_says_why() {
    let mut app = app_with(sortable());
    type_filter(&mut app, "pid:7");
    type_filter(&mut app, "pid:seven");
    assert_eq!(app.filter, Some(Filter::Pid(7)));
    assert!(app.status.as_deref().unwrap().contains("not a pid"));
    // First Esc clears the message, the second the filter.
    app.handle_key(Key::Esc);
    assert_eq!(app.status, None);
    assert_eq!(app.filter, Some(Filter::Pid(7)));
    app.handle_key(Key::Esc);
    assert_eq!(app.filter, None);
}

#[test]
fn esc_cancels_the_prompt_without_changing_the_filter() {
    let mut app = app_with(sortable());
    type_filter(&mut app, "pid:7");
    app.handle_key(Key::Char('/'));
    app.handle_key(Key::Char('x'));
    app.handle_key(Key::Esc);
    assert_eq!(app.prompt, None);
    assert_eq!(app.filter, Some(Filter::Pid(7)));
}

#[test]
fn filter_applies_to_events() {
    let mut s = sample();
    s.events = vec![
        ev(0, EventKind::Alloc, 7, 1, "heap"),
        ev(1, EventKind::Alloc, 1, 1, "page_table"),
    ];
    let mut app = app_with(s);
    type_filter(&mut app, "pid:1");
    let seqs: Vec<u64> = app.visible_events().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1]);
}

#[test]
fn history_series_are_bounded_and_follow_pids() {
    let mut app = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    for i in 0..(HISTORY_LEN as u64 + 25) {
        let mut s = sample();
        std::sync::Arc::make_mut(&mut s.entries)[2].npages = i; // pid 7's heap grows
        s.header.free_pages = 1000 + i;
        app.apply_snapshot(s, t0 + Duration::from_millis(500 * i));
    }
    let h = app.history_of(7);
    assert_eq!(h.len(), HISTORY_LEN);
    // Oldest kept is sample 25: pages = 25 (heap) + 3 + 2.
    assert_eq!(h[0], 25 + 5);
    assert_eq!(*h.last().unwrap(), HISTORY_LEN as u64 + 24 + 5);
    assert_eq!(app.free_history.len(), HISTORY_LEN);
    assert_eq!(app.history_of(0), vec![4; HISTORY_LEN]);
    // A PID that disappears loses its series.
    let mut s = sample();
    std::sync::Arc::make_mut(&mut s.entries).retain(|e| e.owner != 7);
    s.procs.retain(|p| p.pid != 7);
    app.apply_snapshot(s, t0 + Duration::from_secs(100));
    assert!(app.history_of(7).is_empty());
    let rows = app.overview_rows();
    assert_eq!(
        rows.iter().map(|r| r.summary.pid).collect::<Vec<_>>(),
        [0, 1]
    );
}

#[test]
fn overview_always_has_a_kernel_row() {
    let mut s = sample();
    std::sync::Arc::make_mut(&mut s.entries).retain(|e| e.owner != 0);
    let app = app_with(s);
    let rows = app.overview_rows();
    assert_eq!(rows[0].summary.pid, 0);
    assert_eq!(rows[0].summary.pages, 0);
}

#[test]
fn events_accumulate_bounded_and_deduplicated() {
    let mut app = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut seq = 0;
    for i in 0..6u64 {
        let mut s = sample();
        s.events = (0..1000)
            .map(|k| ev(seq + k, EventKind::Alloc, 7, 1, "heap"))
            .collect();
        seq += 1000;
        s.header.event_head = seq;
        s.missed_events = 2;
        app.apply_snapshot(s, t0 + Duration::from_secs(i));
    }
    assert_eq!(app.events.len(), EVENT_HISTORY_LEN);
    assert_eq!(
        app.events.front().unwrap().seq,
        6000 - EVENT_HISTORY_LEN as u64
    );
    assert_eq!(app.missed_events, 12);
    // A reconnect that resends the ring adds nothing twice.
    let mut s = sample();
    s.events = (5500..6003)
        .map(|k| ev(k, EventKind::Alloc, 7, 1, "heap"))
        .collect();
    s.header.event_head = 6003;
    app.apply_snapshot(s, t0 + Duration::from_secs(10));
    assert_eq!(app.events.back().unwrap().seq, 6002);
    let n_5999 = app.events.iter().filter(|e| e.seq == 5999).count();
    assert_eq!(n_5999, 1);
    // A guest reboot (event head went back) starts the sequence over and says so.
    let mut s = sample();
    s.events = vec![ev(0, EventKind::Alloc, 1, 1, "heap")];
    s.header.event_head = 1;
    app.apply_snapshot(s, t0 + Duration::from_secs(11));
    assert_eq!(app.events.back().unwrap().seq, 0);
    assert!(app.status.as_deref().unwrap().contains("restarted"));
}

#[test]
fn running_share_from_pause_and_period() {
    let mut app = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut s = sample();
    s.pause_us = 5_000;
    // First snapshot: the period is the interval (500 ms): 1 - 5/500.
    app.apply_snapshot(s.clone(), t0);
    assert!((app.running_share.unwrap() - 0.99).abs() < 1e-9);
    // Then the measured time between snapshots (100 ms): 1 - 5/100.
    app.apply_snapshot(s.clone(), t0 + Duration::from_millis(100));
    assert!((app.running_share.unwrap() - 0.95).abs() < 1e-9);
    s.pause_us = 1_000_000;
    app.apply_snapshot(s, t0 + Duration::from_millis(200));
    assert_eq!(app.running_share, Some(0.0));
}

#[test]
fn pause_and_interval_actions() {
    let mut app = App::new(Duration::from_millis(500));
    assert_eq!(app.handle_key(Key::Char('p')), Action::SetPaused(true));
    assert!(app.paused);
    assert_eq!(app.handle_key(Key::Char(' ')), Action::SetPaused(false));
    assert!(!app.paused);
    assert_eq!(
        app.handle_key(Key::Char('+')),
        Action::SetInterval(Duration::from_secs(1))
    );
    assert_eq!(app.interval, Duration::from_secs(1));
    assert_eq!(
        app.handle_key(Key::Char('-')),
        Action::SetInterval(Duration::from_millis(500))
    );
    assert_eq!(
        app.handle_key(Key::Char('-')),
        Action::SetInterval(Duration::from_millis(250))
    );
    for _ in 0..10 {
        app.handle_key(Key::Char('-'));
    }
    assert_eq!(app.interval, INTERVAL_STEPS[0]);
    assert_eq!(app.handle_key(Key::Char('-')), Action::None);
    // An interval between steps moves to the neighbouring step.
    let mut app = App::new(Duration::from_millis(300));
    assert_eq!(
        app.handle_key(Key::Char('+')),
        Action::SetInterval(Duration::from_millis(500))
    );
}

#[test]
fn view_switching_help_and_quit() {
    let mut app = App::new(Duration::from_millis(500));
    assert_eq!(app.view, View::Overview);
    app.handle_key(Key::Tab);
    assert_eq!(app.view, View::Allocations);
    app.handle_key(Key::BackTab);
    app.handle_key(Key::BackTab);
    assert_eq!(app.view, View::Events);
    app.handle_key(Key::Char('3'));
    assert_eq!(app.view, View::PageMap);
    app.handle_key(Key::Char('?'));
    assert!(app.show_help);
    // While help is open, other keys do nothing but q still quits.
    assert_eq!(app.handle_key(Key::Char('1')), Action::None);
    assert_eq!(app.view, View::PageMap);
    app.handle_key(Key::Esc);
    assert!(!app.show_help);
    assert_eq!(app.handle_key(Key::Char('q')), Action::Quit);
    app.handle_key(Key::Char('/'));
    assert_eq!(app.handle_key(Key::CtrlC), Action::Quit);
}

#[test]
fn overview_enter_shows_that_pids_allocations() {
    let mut app = app_with(sample());
    app.handle_key(Key::Down);
    app.handle_key(Key::Down);
    app.handle_key(Key::Down); // clamped at the last row (pid 7)
    app.handle_key(Key::Enter);
    assert_eq!(app.view, View::Allocations);
    assert_eq!(app.filter, Some(Filter::Pid(7)));
    assert_eq!(slots(&app), [2, 4, 5]);
}

#[test]
fn crossterm_keys_map_to_keys() {
    let k = |code, mods| KeyEvent::new(code, mods);
    assert_eq!(
        from_crossterm(&k(KeyCode::Char('q'), KeyModifiers::NONE)),
        Some(Key::Char('q'))
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Some(Key::CtrlC)
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::Char('x'), KeyModifiers::CONTROL)),
        None
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::Char('+'), KeyModifiers::SHIFT)),
        Some(Key::Char('+'))
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::Tab, KeyModifiers::NONE)),
        Some(Key::Tab)
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::BackTab, KeyModifiers::SHIFT)),
        Some(Key::BackTab)
    );
    assert_eq!(
        from_crossterm(&k(KeyCode::Esc, KeyModifiers::NONE)),
        Some(Key::Esc)
    );
    assert_eq!(from_crossterm(&k(KeyCode::F(5), KeyModifiers::NONE)), None);
    let mut release = k(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert_eq!(from_crossterm(&release), None);
}

#[test]
fn page_cursor_moves_by_cells_and_shows_the_allocation() {
    let mut s = sample();
    s.header.ram_pages = 16;
    s.header.ram_base = 0x8030_0000;
    let mut app = app_with(s);
    app.set_terminal_size(4 + 2, 4 + 8);
    app.handle_key(Key::Char('3'));
    app.handle_key(Key::Down);
    assert_eq!(app.page_cursor, 4);
    app.handle_key(Key::Right);
    assert_eq!(app.page_cursor, 5);
    let here = app.entries_in_pages(app.page_cursor, 1);
    assert_eq!((here[0].owner, &*here[0].tag, here[0].slot), (7, "heap", 2));
    app.handle_key(Key::Down);
    app.handle_key(Key::Down);
    assert_eq!(app.page_cursor, 13); // last row, same column
    app.handle_key(Key::Down);
    assert_eq!(app.page_cursor, 13); // clamped at the last row
    app.handle_key(Key::Right);
    app.handle_key(Key::Right);
    app.handle_key(Key::Right);
    assert_eq!(app.page_cursor, 15); // clamped to the last cell
    assert!(app.entries_in_pages(15, 1).is_empty());
    app.handle_key(Key::Home);
    assert_eq!(app.page_cursor, 0);
    app.handle_key(Key::End);
    assert_eq!(app.page_cursor, 15);
}

/// A source that fails on demand, for the sampler state machine.
struct Scripted {
    samples: Vec<Result<(), &'static str>>,
    reconnects: Vec<Result<(), &'static str>>,
    detached: bool,
}

impl Source for Scripted {
    fn capabilities(&self) -> crate::source::Capabilities {
        crate::source::Capabilities {
            origin: crate::source::Origin::Live,
            halts_guest: true,
            can_debug: false,
        }
    }
    fn sample(&mut self) -> anyhow::Result<Snapshot> {
        match self.samples.remove(0) {
            Ok(()) => Ok(sample()),
            Err(e) => Err(anyhow::anyhow!(e)),
        }
    }
    fn reconnect(&mut self) -> anyhow::Result<()> {
        self.reconnects.remove(0).map_err(|e| anyhow::anyhow!(e))
    }
    fn detach(&mut self) {
        self.detached = true;
    }
}

fn tick(s: &mut SampleLoop) -> (Vec<String>, Duration) {
    let mut out = Vec::new();
    let wait = s.tick(&mut |m| {
        out.push(match m {
            Msg::Snapshot(..) => "snapshot".to_string(),
            Msg::Connection(c) => format!("{c:?}"),
            Msg::Gdb(line) => line,
            Msg::Debug(_) => "debug".to_string(),
        })
    });
    (out, wait)
}

#[test]
fn sampler_reconnects_with_backoff() {
    let src = Scripted {
        samples: vec![Ok(()), Err("connection reset"), Ok(())],
        reconnects: vec![Err("refused"), Err("refused"), Ok(())],
        detached: false,
    };
    let interval = Duration::from_millis(500);
    let mut s = SampleLoop::new(Box::new(NoDebugger(src)), interval);
    assert_eq!(tick(&mut s), (vec!["snapshot".into()], interval));
    let (out, wait) = tick(&mut s);
    assert_eq!(out, [r#"Disconnected { reason: "connection reset" }"#]);
    assert_eq!(wait, FIRST_BACKOFF);
    let (out, wait) = tick(&mut s);
    assert_eq!(
        out,
        [
            r#"Reconnecting { attempt: 1, reason: "connection reset" }"#,
            r#"Disconnected { reason: "refused" }"#
        ]
    );
    assert_eq!(wait, FIRST_BACKOFF * 2);
    let (out, wait) = tick(&mut s);
    assert_eq!(out[0], r#"Reconnecting { attempt: 2, reason: "refused" }"#);
    assert_eq!(wait, FIRST_BACKOFF * 4);
    let (out, wait) = tick(&mut s);
    assert_eq!(
        out,
        [
            r#"Reconnecting { attempt: 3, reason: "refused" }"#,
            "Connected"
        ]
    );
    assert_eq!(wait, Duration::ZERO);
    assert_eq!(tick(&mut s).0, ["snapshot"]);
    // Paused: no calls into the source at all (the scripts are used up and would panic).
    s.paused = true;
    assert_eq!(tick(&mut s).0, Vec::<String>::new());
    assert_eq!(backoff(30), MAX_BACKOFF);
}

#[test]
fn demo_source_evolves_and_reclaims_leaks() {
    let mut src = DemoSource::with_seed(7);
    let mut app = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    let mut pids_seen = std::collections::BTreeSet::new();
    let mut prev_head = 0;
    for i in 0..80 {
        let s = src.sample().unwrap();
        // Invariants of a consistent snapshot.
        let h = &s.header;
        assert_eq!(h.count as usize, s.entries.len());
        assert_eq!(
            h.tracked_pages,
            s.entries.iter().map(|e| e.npages).sum::<u64>()
        );
        assert!(h.free_pages + h.tracked_pages <= h.ram_pages);
        assert_eq!(h.generation % 2, 0);
        for e in &s.events {
            assert!(e.seq >= prev_head && e.seq < h.event_head);
        }
        prev_head = h.event_head;
        pids_seen.extend(s.procs.iter().map(|p| p.pid));
        app.apply_snapshot(s, t0 + Duration::from_millis(500 * i));
    }
    assert!(pids_seen.len() > 5, "processes appear: {pids_seen:?}");
    assert!(app.leaks.reports().len() >= 2, "leaky exits are reclaimed");
    assert!(app.events.iter().any(|e| e.kind == EventKind::Free));
    // Deterministic per seed.
    let (mut a, mut b) = (DemoSource::with_seed(3), DemoSource::with_seed(3));
    for _ in 0..10 {
        assert_eq!(a.sample().unwrap(), b.sample().unwrap());
    }
    src.detach();
    assert!(src.detached());
}

#[test]
fn demo_source_outages_need_reconnects() {
    let mut src = DemoSource::with_seed(1).with_outages(3, 2);
    assert!(src.sample().is_ok());
    assert!(src.sample().is_ok());
    assert!(src.sample().is_err());
    assert!(src.sample().is_err(), "stays down until reconnected");
    assert!(src.reconnect().is_err());
    assert!(src.reconnect().is_ok());
    assert!(src.sample().is_ok());
}

#[test]
fn filter_applies_to_leak_reports() {
    let mut s = sample();
    s.events = vec![
        ev(0, EventKind::ExitReclaim, 7, 2, "heap"),
        ev(1, EventKind::ExitReclaim, 1, 1, "page_table"),
    ];
    s.header.event_head = 2;
    let mut app = app_with(s);
    assert_eq!(
        app.visible_leaks()
            .iter()
            .map(|r| r.pid)
            .collect::<Vec<_>>(),
        [1, 7]
    );
    for (text, pids) in [
        ("pid:7", vec![7]),
        ("tag:page_table", vec![1]),
        ("shell", vec![1]),
        ("nothing", vec![]),
    ] {
        type_filter(&mut app, text);
        assert_eq!(
            app.visible_leaks()
                .iter()
                .map(|r| r.pid)
                .collect::<Vec<_>>(),
            pids,
            "{text}"
        );
    }
}
