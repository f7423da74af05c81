//! Opening an allocation's call site from the allocations view (Enter: kernel site, `u`: user
//! site) in the debugger view, with no stop: the right entry's right line, read from the real
//! workspace files, marked in the drawn source; `u` switches, Esc closes, a debugger command or
//! a new stop replaces it.

use super::app::*;
use super::debugger::SiteKind;
use super::input::Key;
use super::views;
use crate::debugger::args::Args;
use crate::debugger::live::{DebugReport, DebugState};
use crate::debugger::StopView;
use crate::model::tests::sample;
use crate::model::{Entry, Site};
use crate::riscv::Registers;
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The workspace root: site files are named relative to it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("inspector/ is in the workspace")
        .to_path_buf()
}

/// Line `n` (1-based) of the workspace file `file`, read independently of the code under test.
fn line_of(file: &str, n: u32) -> String {
    std::fs::read_to_string(root().join(file))
        .unwrap()
        .lines()
        .nth(n as usize - 1)
        .unwrap()
        .to_string()
}

fn site(function: &str, file: &str, line: u32) -> Option<Arc<Site>> {
    Some(Arc::new(Site {
        function: function.into(),
        file: file.into(),
        line,
    }))
}

const KERNEL_FILE: &str = "kernel/src/mm/mod.rs";
const PROC_FILE: &str = "kernel/src/proc.rs";
const USER_FILE: &str = "kernel/user/src/bin/leak.rs";

/// An app on the allocations view over three entries (sorted by pa): slot 0 a kernel
/// allocation from proc.rs:30, slot 1 pid 2's from mod.rs:40 asked for at leak.rs:21, slot 2
/// one whose site has no line.
fn app() -> App {
    let mut s = sample();
    let e =
        |slot: usize, pa: u64, owner: u32, sites: (Option<Arc<Site>>, Option<Arc<Site>>)| Entry {
            slot,
            pa,
            npages: 1,
            owner,
            tag: "t".into(),
            time: 0,
            site: sites.0,
            user_site: sites.1,
        };
    s.entries = Arc::new(vec![
        e(0, 0x8030_0000, 0, (site("build", PROC_FILE, 30), None)),
        e(
            1,
            0x8030_1000,
            2,
            (
                site("alloc_pages", KERNEL_FILE, 40),
                site("main", USER_FILE, 21),
            ),
        ),
        e(2, 0x8030_2000, 0, (site("0x80200000", "", 0), None)),
    ]);
    let mut app = App::new(Duration::from_millis(250));
    app.apply_snapshot(s, Instant::now());
    app.source_root = Some(root());
    app.handle_key(Key::Char('2'));
    app
}

/// The shown site's (kind, file, current line number, current line text).
fn shown(app: &App) -> (SiteKind, String, u32, String) {
    let s = app.debugger.site.as_ref().expect("a site is shown");
    let cur = s.lines.iter().find(|l| l.current).expect("a current line");
    (s.shown, s.site().file.clone(), cur.number, cur.text.clone())
}

fn render(app: &mut App, w: u16, h: u16) -> (Vec<String>, ratatui::buffer::Buffer) {
    app.set_terminal_size(w, h);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| views::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let lines = (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect();
    (lines, buf)
}

#[test]
fn enter_opens_the_selected_allocations_kernel_site_without_a_stop() {
    let mut app = app();
    let (lines, _) = render(&mut app, 140, 20);
    assert!(
        lines[2].contains("Enter kernel site · u user site"),
        "the allocations view names the keys:\n{}",
        lines.join("\n")
    );
    assert_eq!(app.handle_key(Key::Down), Action::None);
    assert_eq!(
        app.handle_key(Key::Enter),
        Action::None,
        "no debugger command"
    );
    assert_eq!(app.view, View::Debugger);
    assert!(app.debugger.stop().is_none(), "the guest was never stopped");
    assert_eq!(
        shown(&app),
        (
            SiteKind::Kernel,
            KERNEL_FILE.to_string(),
            40,
            line_of(KERNEL_FILE, 40)
        )
    );
    // Drawn: the file:line in the title, the line marked and highlighted, the switch offered.
    let (lines, buf) = render(&mut app, 140, 40);
    let text = lines.join("\n");
    assert!(
        text.contains("kernel site kernel/src/mm/mod.rs:40 · alloc_pages · u user site"),
        "{text}"
    );
    let marked = format!("=>   40 {}", line_of(KERNEL_FILE, 40));
    let marked = marked.trim_end();
    let y = lines
        .iter()
        .position(|l| l.contains(marked))
        .unwrap_or_else(|| panic!("no {marked:?} in:\n{text}"));
    let x = lines[y].find("=>").unwrap() as u16;
    assert_eq!(buf[(x, y as u16)].bg, Color::Yellow);
    assert!(text.contains(
        &format!("     39 {}", line_of(KERNEL_FILE, 39))
            .trim_end()
            .to_string()
    ));
    assert!(!text.contains("Debugger: running"), "{text}");

    // The first row opens its own site, not the one shown last.
    app.handle_key(Key::Esc);
    app.handle_key(Key::Char('2'));
    app.handle_key(Key::Up);
    app.handle_key(Key::Enter);
    assert_eq!(
        shown(&app),
        (
            SiteKind::Kernel,
            PROC_FILE.to_string(),
            30,
            line_of(PROC_FILE, 30)
        )
    );
}

#[test]
fn u_opens_the_user_site_and_switches_between_the_two() {
    let mut app = app();
    app.handle_key(Key::Down);
    app.handle_key(Key::Char('u'));
    assert_eq!(app.view, View::Debugger);
    assert_eq!(
        shown(&app),
        (
            SiteKind::User,
            USER_FILE.to_string(),
            21,
            line_of(USER_FILE, 21)
        )
    );
    let (lines, _) = render(&mut app, 140, 40);
    let text = lines.join("\n");
    assert!(
        text.contains("user site kernel/user/src/bin/leak.rs:21 · main · u kernel site"),
        "{text}"
    );
    // In the debugger view `u` switches to the other site and back.
    app.handle_key(Key::Char('u'));
    assert_eq!(shown(&app).0, SiteKind::Kernel);
    assert_eq!(shown(&app).2, 40);
    app.handle_key(Key::Char('u'));
    assert_eq!(shown(&app).0, SiteKind::User);
    assert_eq!(shown(&app).2, 21);
}

#[test]
fn an_allocation_without_that_site_or_line_says_so_and_stays() {
    let mut app = app();
    // Slot 0: the kernel's own, no user site.
    app.handle_key(Key::Char('u'));
    assert_eq!(app.view, View::Allocations);
    assert!(app.debugger.site.is_none());
    assert!(app.status.as_deref().unwrap().contains("no user site"));
    // Its kernel site opens; `u` there has nothing to switch to and says so.
    app.handle_key(Key::Enter);
    app.handle_key(Key::Char('u'));
    assert_eq!(shown(&app).0, SiteKind::Kernel);
    assert!(app.status.as_deref().unwrap().contains("no user site"));
    // Slot 2: a site without a line.
    app.status = None;
    app.handle_key(Key::Char('2'));
    app.handle_key(Key::End);
    let before = app.debugger.site.clone();
    app.handle_key(Key::Enter);
    assert_eq!(app.view, View::Allocations);
    assert_eq!(
        app.debugger.site, before,
        "the shown site is left as it was"
    );
    assert!(app
        .status
        .as_deref()
        .unwrap()
        .contains("no line information"));
}

#[test]
fn a_missing_file_still_opens_the_site_and_says_where_it_looked() {
    let mut app = app();
    app.source_root = Some(PathBuf::from("/nonexistent-leakscope-root"));
    // Relative names also try the current directory (the tests run in inspector/, where
    // kernel/... does not exist).
    app.handle_key(Key::Down);
    app.handle_key(Key::Enter);
    assert_eq!(app.view, View::Debugger);
    let s = app.debugger.site.as_ref().unwrap();
    assert!(s.lines.is_empty());
    assert!(app
        .status
        .as_deref()
        .unwrap()
        .contains("not on this machine"));
    let (lines, _) = render(&mut app, 140, 40);
    assert!(lines
        .join("\n")
        .contains("(kernel/src/mm/mod.rs not found on this machine)"));
}

#[test]
fn esc_a_debugger_command_or_a_new_stop_closes_the_site() {
    let mut app = app();
    app.handle_key(Key::Enter);
    assert!(app.debugger.site.is_some());
    app.handle_key(Key::Esc);
    assert!(app.debugger.site.is_none());
    assert_eq!(app.view, View::Debugger);
    let (lines, _) = render(&mut app, 100, 24);
    assert!(lines.join("\n").contains("Debugger: running"));

    app.handle_key(Key::Char('2'));
    app.handle_key(Key::Enter);
    assert!(matches!(app.handle_key(Key::Char('x')), Action::Debug(_)));
    assert!(app.debugger.site.is_none(), "the command's result is shown");

    app.debugger.busy = false;
    app.handle_key(Key::Char('2'));
    app.handle_key(Key::Enter);
    // A report that is not a stop keeps it; a stop replaces it.
    app.apply_debug_report(Ok(DebugReport {
        state: DebugState::Running,
        breakpoints: vec![],
        message: None,
    }));
    assert!(app.debugger.site.is_some());
    app.apply_debug_report(Ok(DebugReport {
        state: DebugState::Stopped(Box::new(StopView {
            pc: 0x8020_0000,
            breakpoint: None,
            position: None,
            source: vec![],
            registers: Registers::default(),
            backtrace: vec![],
            args: Args(vec![]),
            inlined_args: vec![],
            changed: None,
            hart: None,
            stopped_hart: None,
            harts: vec![],
            process: None,
        })),
        breakpoints: vec![],
        message: None,
    }));
    assert!(app.debugger.site.is_none());
    let (lines, _) = render(&mut app, 100, 24);
    assert!(lines.join("\n").contains("pc 0x80200000"));
}
