//! Rendering tests: every view drawn into ratatui's `TestBackend`, asserting on the text.

use super::app::*;
use super::filter::Filter;
use super::input::Key;
use super::pagemap::PAGEMAP_CHROME;
use super::views::{self, sparkline, truncate, truncate_start};
use crate::model::tests::sample;
use crate::model::{Event, EventKind, Snapshot};
use crate::source::DemoSource;
use crate::source::Source;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;
use std::time::{Duration, Instant};

/// Draws `app` at `w`×`h` and returns the screen as lines.
fn render(app: &mut App, w: u16, h: u16) -> Vec<String> {
    app.set_terminal_size(w, h);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| views::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn assert_has(lines: &[String], needle: &str) {
    assert!(
        has(lines, needle),
        "no line contains {needle:?}:\n{}",
        lines.join("\n")
    );
}

fn ev(seq: u64, kind: EventKind, owner: u32, npages: u64, tag: &str) -> Event {
    Event {
        seq,
        kind,
        owner,
        slot: None,
        pa: 0x8040_0000,
        npages,
        tag: tag.into(),
        time: 20_000_000 + seq,
        site: None,
        user_site: None,
    }
}

/// `sample()` plus counters and a pid-7 exit with leftovers.
fn rich() -> Snapshot {
    let mut s = sample();
    s.header.failed_allocs = 2;
    s.header.total_allocs = 40;
    s.pause_us = 420;
    s.events = vec![
        ev(0, EventKind::Alloc, 7, 2, "heap"),
        ev(1, EventKind::ExitReclaim, 7, 2, "heap"),
        ev(2, EventKind::ExitReclaim, 7, 3, "heap"),
        ev(3, EventKind::ExitReclaim, 7, 1, "user_stack"),
        ev(4, EventKind::InvalidFree, 1, 1, "double_free"),
    ];
    s.header.event_head = 5;
    s
}

fn app() -> App {
    let mut app = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    app.apply_snapshot(rich(), t0);
    app.apply_snapshot(rich(), t0 + Duration::from_millis(500));
    app
}

#[test]
fn overview_at_80x24() {
    let mut app = app();
    let l = render(&mut app, 80, 24);
    assert_has(&l, "● connected");
    assert_has(&l, "every 500ms");
    assert_has(&l, "pause 420µs");
    assert_has(&l, "ran 99.9%");
    assert_has(&l, "1 Overview");
    // Rows: kernel, shell, leak, untracked, free.
    let row = |pid: &str, name: &str| {
        l.iter()
            .find(|x| x.trim_start_matches('│').trim_start().starts_with(pid) && x.contains(name))
            .cloned()
    };
    let leak = row("7", "leak").expect("pid 7 row");
    assert!(
        leak.contains("sleeping") && leak.contains(" 3 ") && leak.contains(" 7 "),
        "{leak}"
    );
    assert!(leak.contains("28"), "7 pages = 28 KiB: {leak}");
    assert!(leak.contains("heap 5"), "{leak}");
    assert!(row("0", "kernel").is_some());
    assert!(row("1", "shell").is_some());
    assert_has(&l, "untracked");
    assert_has(&l, "32000"); // free pages
    assert_has(&l, "table 5/8192");
    assert_has(&l, "failed 2");
    assert_has(&l, "invalid frees 0");
}

#[test]
fn overview_warns_in_colour_only_when_counters_are_nonzero() {
    let mut app = app();
    app.set_terminal_size(80, 24);
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| views::draw(f, &app)).unwrap();
    let buf = t.backend().buffer().clone();
    let find = |needle: &str| {
        for y in 0..24u16 {
            let line: String = (0..80u16)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect();
            if let Some(i) = line.find(needle) {
                let x = line[..i].chars().count() as u16;
                return buf[(x, y)].bg;
            }
        }
        panic!("{needle} not drawn");
    };
    assert_eq!(find("failed 2"), ratatui::style::Color::Red);
    assert_ne!(find("invalid frees 0"), ratatui::style::Color::Red);
}

#[test]
fn allocations_view_sorted_and_filtered() {
    let mut app = app();
    app.handle_key(Key::Char('2'));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "Allocations 5/5 · sort pa");
    assert_has(&l, "0x80305000");
    assert_has(&l, "page_table");
    // The pa-sorted order shows on screen.
    let pos = |needle: &str| l.iter().position(|x| x.contains(needle)).unwrap();
    assert!(pos("0x80300000") < pos("0x80304000") && pos("0x80304000") < pos("0x8030a000"));
    app.handle_key(Key::Char('s'));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "sort pages");
    let pos = |needle: &str| l.iter().position(|x| x.contains(needle)).unwrap();
    assert!(pos("0x80300000") < pos("0x80307000") && pos("0x80307000") < pos("0x80304000"));
    app.filter = Some(Filter::Pid(7));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "Allocations 3/5");
    assert_has(&l, "filter pid:7");
    assert!(!has(&l, "0x80300000"), "kernel entry filtered out");
}

#[test]
fn allocations_selection_scrolls_into_view() {
    let mut src = DemoSource::with_seed(5);
    let mut app = App::new(Duration::from_millis(500));
    for i in 0..40 {
        app.apply_snapshot(
            src.sample().unwrap(),
            Instant::now() + Duration::from_secs(i),
        );
    }
    app.handle_key(Key::Char('2'));
    app.handle_key(Key::End);
    let n = app.visible_entries().len();
    assert!(n > 30, "enough entries to scroll: {n}");
    assert_eq!(app.alloc_sel, n - 1);
    let last_pa = format!("{:#x}", app.visible_entries()[n - 1].pa);
    let l = render(&mut app, 80, 24);
    assert_has(&l, &last_pa);
}

#[test]
fn filter_prompt_in_footer() {
    let mut app = app();
    app.handle_key(Key::Char('/'));
    for c in "tag:he".chars() {
        app.handle_key(Key::Char(c));
    }
    let l = render(&mut app, 80, 24);
    assert!(l[23].starts_with("/tag:he"), "{}", l[23]);
    assert_has(&l, "Enter apply");
}

#[test]
fn page_map_at_80x24() {
    let mut app = app();
    app.handle_key(Key::Char('3'));
    let l = render(&mut app, 80, 24);
    // 32768 pages on a 78×16 grid: 27 pages per cell.
    assert_has(&l, "1 cell = 27 pages");
    assert_has(&l, "free or untracked");
    assert_has(&l, "■kernel");
    assert_has(&l, "■7:leak");
    // The sample's entries are pages 768-779, all in cell 28 (pages 756-782), shared.
    let row = &l[3];
    let cells: Vec<char> = row.chars().skip(1).take(78).collect();
    assert_eq!(cells[0], views::EMPTY_CELL, "{row}");
    assert_eq!(cells[27], views::EMPTY_CELL, "{row}");
    assert_eq!(cells[28], views::PART_CELL, "{row}");
    assert_eq!(cells[29], views::EMPTY_CELL, "{row}");
    // Cursor on page 0: nothing there.
    assert_has(&l, "pages 0-26: free or untracked (no allocation)");
    // Move onto cell 28 (pages 756-782): the first allocation there is the kernel's.
    for _ in 0..28 {
        app.handle_key(Key::Right);
    }
    let l = render(&mut app, 80, 24);
    assert_has(
        &l,
        "pages 756-782: 5 allocs, 1st: pid 0 kernel tag kstack slot 0 0x80300000 4p",
    );
}

#[test]
fn page_map_one_page_per_cell_shows_owner_at_cursor() {
    let mut s = rich();
    s.header.ram_base = 0x8030_0000;
    s.header.ram_pages = 64;
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(s, Instant::now());
    app.handle_key(Key::Char('3'));
    app.set_terminal_size(80, 24);
    for _ in 0..5 {
        app.handle_key(Key::Right);
    }
    let l = render(&mut app, 80, 24);
    assert_has(&l, "1 cell = 1 page ");
    assert_has(
        &l,
        "page 5 0x80305000: pid 7 leak tag heap slot 2 0x80305000 2p",
    );
    let cells: Vec<char> = l[3].chars().skip(1).take(64).collect();
    assert_eq!(cells[..12].iter().collect::<String>(), "█".repeat(12));
    assert_eq!(cells[12], views::EMPTY_CELL);
}

#[test]
fn page_map_with_alloc_base_shows_firmware_and_free_exactly() {
    let mut s = rich();
    s.header.ram_base = 0x8000_0000;
    s.header.ram_pages = 1024;
    // The allocator starts at page 768 (0x80300000), where the sample's entries begin.
    s.header.alloc_base = 0x8030_0000;
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(s, Instant::now());
    app.handle_key(Key::Char('3'));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "firmware+kernel");
    assert_has(&l, "· free ");
    assert!(!has(&l, "free or untracked"), "{}", l.join("\n"));
    assert_has(&l, "firmware+kernel image 768 pages");
    // Cursor on cell 0: below the allocator's base.
    assert_has(&l, "firmware / kernel image (never allocated)");
    let cells: Vec<char> = l[3].chars().skip(1).take(78).collect();
    assert_eq!(cells[0], views::IMAGE_CELL, "{}", l[3]);
    // The last grid row (pages 1014-1023) is above every allocation: free.
    let last: Vec<char> = l[3 + 13].chars().skip(1).take(10).collect();
    assert!(last.iter().all(|&c| c == views::EMPTY_CELL), "{}", l[16]);
}

#[test]
fn page_map_grid_matches_app_geometry() {
    // The app moves the cursor on the grid it computes; the view must draw that same grid.
    for (w, h) in [(80, 24), (120, 40), (30, 12), (20, 5)] {
        let [_, _, body, _] = views::screen_layout(Rect::new(0, 0, w, h));
        let [grid, _] = views::pagemap_areas(body);
        assert_eq!(
            (grid.width, grid.height),
            (
                w.saturating_sub(PAGEMAP_CHROME.0),
                h.saturating_sub(PAGEMAP_CHROME.1)
            ),
            "{w}x{h}"
        );
    }
}

#[test]
fn leaks_and_events_view() {
    let mut app = app();
    app.handle_key(Key::Char('4'));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "Leaks: 1 exits with leftovers");
    assert_has(
        &l,
        "pid 7 (leak) leak: 6 pages in 3 allocations force-freed: heap ×2",
    );
    // The report wraps rather than being cut at 80 columns.
    assert_has(&l, "user_stack ×1 (1 p)");
    assert_has(&l, "RECLAIM");
    assert_has(&l, "BAD FREE");
    assert_has(&l, "double_free");
    assert_has(&l, "Events 5/5");
    assert!(!has(&l, "MISSED"));
    let mut s = rich();
    s.events.clear();
    s.missed_events = 17;
    app.apply_snapshot(s, Instant::now() + Duration::from_secs(5));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "17 MISSED");
    // Scrolling the event list says so.
    app.handle_key(Key::Down);
    app.handle_key(Key::Down);
    assert_has(&render(&mut app, 80, 24), "↓2 newer above");
}

#[test]
fn help_popup() {
    let mut app = app();
    app.handle_key(Key::Char('?'));
    let l = render(&mut app, 80, 24);
    assert_has(&l, "Keys");
    assert_has(&l, "pause / resume live updates");
    assert_has(&l, "cycle sort");
    assert_has(&l, "pid:7, tag:heap");
}

#[test]
fn header_shows_disconnection_and_reconnects() {
    let mut app = app();
    app.set_connection(Connection::Disconnected {
        reason: "connection refused (os error 111)".into(),
    });
    let l = render(&mut app, 80, 24);
    assert_has(&l, "✖ disconnected: connection refused (os error 111)");
    assert!(!has(&l, "guest running"));
    // The last data stays on screen while disconnected.
    assert_has(&l, "leak");
    // A long error: the header shows its end (the root cause), the footer all of it.
    let long = "cannot attach to the GDB stub at 127.0.0.1:1234: connect: Connection refused (os error 111)";
    app.set_connection(Connection::Disconnected {
        reason: long.into(),
    });
    let l = render(&mut app, 80, 24);
    assert!(
        l[0].contains("✖ disconnected: …") && l[0].contains("Connection refused (os error 111)"),
        "{}",
        l[0]
    );
    assert!(
        l[23].starts_with(
            "cannot attach to the GDB stub at 127.0.0.1:1234: connect: Connection refused"
        ),
        "{}",
        l[23]
    );
    app.set_connection(Connection::Reconnecting {
        attempt: 3,
        reason: "refused".into(),
    });
    assert_has(&render(&mut app, 80, 24), "reconnecting (try 3): refused");
    app.handle_key(Key::Char('p'));
    app.set_connection(Connection::Connected);
    assert_has(&render(&mut app, 80, 24), "guest running, updates PAUSED");
}

#[test]
fn before_first_snapshot_every_view_says_waiting() {
    let mut app = App::new(Duration::from_secs(1));
    for k in ['1', '2', '3', '4'] {
        app.handle_key(Key::Char(k));
        let l = render(&mut app, 80, 24);
        assert_has(&l, "connecting");
        assert_has(&l, "every 1s");
        assert_has(&l, "waiting for the first snapshot");
    }
}

#[test]
fn no_panic_at_any_size() {
    let mut base = app();
    let mut src = DemoSource::with_seed(9);
    for i in 0..30 {
        base.apply_snapshot(
            src.sample().unwrap(),
            Instant::now() + Duration::from_secs(i),
        );
    }
    let sizes = [
        (1, 1),
        (20, 5),
        (10, 3),
        (40, 10),
        (80, 24),
        (200, 60),
        (300, 100),
        (5, 50),
    ];
    for view in ['1', '2', '3', '4'] {
        for help in [false, true] {
            for (w, h) in sizes {
                base.handle_key(Key::Char(view));
                base.show_help = help;
                base.handle_key(Key::Right);
                base.handle_key(Key::Down);
                let l = render(&mut base, w, h);
                assert_eq!(l.len(), h as usize);
                base.handle_key(Key::End);
                render(&mut base, w, h);
                base.show_help = false;
            }
        }
    }
}

#[test]
fn sparkline_scales_to_the_maximum() {
    assert_eq!(sparkline(&[0, 1, 2, 4, 8], 10), " ▁▂▄█");
    assert_eq!(sparkline(&[5, 5, 5], 2), "██");
    assert_eq!(sparkline(&[], 4), "");
    assert_eq!(sparkline(&[0, 0], 4), "  ");
}

#[test]
fn truncation_keeps_the_start_or_the_end() {
    assert_eq!(truncate("abcdef", 4), "abc…");
    assert_eq!(truncate("abc", 4), "abc");
    assert_eq!(truncate_start("abcdef", 4), "…def");
    assert_eq!(truncate_start("abc", 3), "abc");
    assert_eq!(truncate_start("abc", 0), "");
}

#[test]
fn header_says_when_the_tracker_is_held_mid_change() {
    let mut s = rich();
    s.mid_change = true;
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(s, Instant::now());
    let l = render(&mut app, 120, 24);
    assert_has(&l, "tracker mid-change: showing the last consistent state");
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(rich(), Instant::now());
    assert!(!has(&render(&mut app, 120, 24), "mid-change"));
}

#[test]
fn overview_names_the_image_row_exactly_when_alloc_base_is_known() {
    let mut app = app();
    let l = render(&mut app, 100, 24);
    assert_has(&l, "kernel image, boot");
    let mut s = rich();
    s.header.alloc_base = s.header.ram_base + 0x10_0000;
    let mut app = App::new(Duration::from_millis(500));
    app.apply_snapshot(s, Instant::now());
    let l = render(&mut app, 100, 24);
    assert_has(&l, "firmware + kernel image");
    assert!(!has(&l, "untracked"), "{}", l.join("\n"));
}

#[test]
fn header_says_the_demo_is_a_demo() {
    let mut a = app();
    let mut src = DemoSource::with_seed(2);
    a.source = Some(src.capabilities());
    a.apply_snapshot(src.sample().unwrap(), Instant::now());
    let l = render(&mut a, 120, 24);
    assert_has(&l, "DEMO: a simulated kernel");
    assert!(!has(&l, "● connected"), "{}", l.join("\n"));
    assert_has(&l, "µs (simulated)");
}

#[test]
fn header_says_ram_reads_cost_the_guest_nothing() {
    let mut a = app();
    let mut s = rich();
    s.read_path = crate::model::ReadPath::Ram;
    s.pause_us = 0;
    a.apply_snapshot(s, Instant::now());
    let l = render(&mut a, 140, 24);
    assert_has(&l, "read from RAM: costs the guest nothing");
    assert!(!has(&l, "pause 0µs"), "{}", l.join("\n"));
}

/// `rich()` with call sites: pid 7's heap pages asked for at `leak.rs:21`, the kernel's at
/// `proc.rs:251`.
fn with_sites() -> Snapshot {
    use crate::model::Site;
    use std::sync::Arc;
    let site = |file: &str, line: u32, function: &str| {
        Some(Arc::new(Site {
            function: function.into(),
            file: file.into(),
            line,
        }))
    };
    let mut s = rich();
    for e in std::sync::Arc::make_mut(&mut s.entries) {
        e.site = site("kernel/src/proc.rs", 251, "build");
    }
    for e in &mut s.events {
        e.site = site("kernel/src/syscall.rs", 161, "sys_alloc_pages");
        if &*e.tag == "heap" {
            e.user_site = site("kernel/user/src/bin/leak.rs", 21, "main");
        }
    }
    s
}

#[test]
fn allocations_show_their_site_and_leaks_group_by_site() {
    let mut sited = App::new(Duration::from_millis(500));
    let t0 = Instant::now();
    sited.apply_snapshot(with_sites(), t0);
    sited.handle_key(Key::Char('2'));
    let l = render(&mut sited, 120, 24);
    assert_has(&l, "SITE");
    assert_has(&l, "kernel/src/proc.rs:251 build");
    sited.handle_key(Key::Char('4'));
    let l = render(&mut sited, 120, 30);
    assert_has(
        &l,
        "kernel/user/src/bin/leak.rs:21 main: 5 pages in 2 allocations",
    );
    assert_has(
        &l,
        "kernel/src/syscall.rs:161 sys_alloc_pages: 1 page in 1 allocation",
    );
    // Without sites (the `rich()` kernel) there is no SITE column.
    let mut plain = app();
    plain.handle_key(Key::Char('2'));
    assert!(!has(&render(&mut plain, 120, 24), "SITE"));
}

#[test]
fn header_names_the_process_on_each_hart() {
    use crate::model::tests::process;
    let mut a = App::new(Duration::from_millis(500));
    // A kernel that records no harts: no hart list.
    a.apply_snapshot(rich(), Instant::now());
    assert!(a.hart_processes().is_empty());
    assert!(!has(&render(&mut a, 160, 24), "hart0"));
    // pid 7 runs on hart 1, hart 0 is idle.
    let mut s = rich();
    let mut churn = process(7, "churn", "running");
    churn.hart = Some(1);
    s.procs.retain(|p| p.pid != 7);
    s.procs.push(churn);
    a.apply_snapshot(s, Instant::now());
    assert_eq!(
        a.hart_processes(),
        [(0, None), (1, Some("churn(7)".to_string()))]
    );
    let l = render(&mut a, 160, 24);
    assert_has(&l, "hart0: idle hart1: churn(7)");
    // Once seen, a hart stays listed: idle when the table puts nobody on it.
    let mut s = rich();
    let mut sh = process(1, "sh", "running");
    sh.hart = Some(0);
    s.procs.retain(|p| p.pid != 1);
    s.procs.push(sh);
    a.apply_snapshot(s, Instant::now());
    assert_has(&render(&mut a, 160, 24), "hart0: sh(1) hart1: idle");
}
