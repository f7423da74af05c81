//! The debugger view: keys → debugger commands, reports → state (a stop opens the view), and
//! rendering into ratatui's `TestBackend` (source with the current line, arguments, registers,
//! backtrace, changed tracker rows, breakpoints).

use super::app::*;
use super::debugger::breakpoint_prompt_command;
use super::input::Key;
use super::views;
use crate::debugger::args::{Arg, ArgValue, Args};
use crate::debugger::live::{BreakpointSummary, DebugCommand, DebugReport, DebugState};
use crate::debugger::{BacktraceFrame, Position, SourceLine, StopView};
use crate::model::{Diff, Entry};
use crate::riscv::{Registers, A0, PC, SP};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;
use std::time::Duration;

fn arg(name: &str, ty: &str, value: ArgValue) -> Arg {
    Arg {
        name: name.into(),
        type_name: ty.into(),
        value,
        decoded: None,
    }
}

fn entry(slot: usize, owner: u32, pa: u64, npages: u64, tag: &str) -> Entry {
    Entry {
        slot,
        pa,
        npages,
        owner,
        tag: tag.into(),
        time: 0,
        site: None,
        user_site: None,
    }
}

/// A stop at track_alloc with pid 7's allocation in the arguments.
fn stop() -> StopView {
    let mut registers = Registers::default();
    registers.set(SP, 0x80f4_3f00);
    registers.set(A0, 0x8050_3000);
    registers.set(PC, 0x8020_4210);
    StopView {
        pc: 0x8020_4210,
        breakpoint: Some(1),
        position: Some(Position {
            file: "/work/main/kernel/src/mm/tracker.rs".into(),
            line: 85,
            function: Some("track_alloc".into()),
        }),
        source: (82..=88)
            .map(|n| SourceLine {
                number: n,
                text: if n == 85 {
                    "    let r = with_tracker(|t| t.track_alloc(pa, npages, owner, tag, timer::now()));".into()
                } else {
                    format!("    // line {n}")
                },
                current: n == 85,
            })
            .collect(),
        registers,
        backtrace: vec![
            BacktraceFrame {
                pc: 0x8020_4210,
                function: Some("track_alloc".into()),
                file: Some("/work/main/kernel/src/mm/tracker.rs".into()),
                line: 85,
                inlined: false,
            },
            BacktraceFrame {
                pc: 0x8020_1000,
                function: Some("kernel::mm::alloc_pages".into()),
                file: Some("/work/main/kernel/src/mm/mod.rs".into()),
                line: 40,
                inlined: false,
            },
        ],
        args: Args(vec![
            arg("pa", "u64", ArgValue::UInt(0x8050_3000)),
            arg("npages", "u64", ArgValue::UInt(4)),
            arg("owner", "u32", ArgValue::UInt(7)),
            arg("tag", "&str", ArgValue::Str("kstack".into())),
        ]),
        inlined_args: vec![(
            "{closure#0}".into(),
            Args(vec![arg("t", "&mut Tracker", ArgValue::Pointer(0x80f5_3d28))]),
        )],
        changed: Some(Diff {
            added: vec![entry(12, 7, 0x8050_3000, 4, "kstack")],
            removed: vec![entry(9, 5, 0x8060_0000, 1, "pagetable")],
            pids_new: vec![7],
            pids_gone: vec![],
        }),
        hart: Some(1),
        stopped_hart: Some(1),
        harts: vec![0, 1],
        process: Some("churn(7)".into()),
    }
}

fn report(state: DebugState) -> DebugReport {
    DebugReport {
        state,
        breakpoints: vec![BreakpointSummary {
            id: 1,
            location: "track_alloc".into(),
            enabled: true,
            hits: 3,
            condition: None,
        }],
        message: Some("breakpoint 1 hit".into()),
    }
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

fn find(lines: &[String], needle: &str) -> (u16, u16) {
    for (y, l) in lines.iter().enumerate() {
        if let Some(byte) = l.find(needle) {
            return (l[..byte].chars().count() as u16, y as u16);
        }
    }
    panic!("no line contains {needle:?}:\n{}", lines.join("\n"));
}

#[test]
fn debugger_keys_send_commands_only_in_the_debugger_view() {
    let mut app = App::new(Duration::from_millis(250));
    // Elsewhere, `s` still cycles the sort and `c` does nothing.
    assert_eq!(app.handle_key(Key::Char('s')), Action::None);
    assert_eq!(app.handle_key(Key::Char('c')), Action::None);
    assert_eq!(app.handle_key(Key::Char('5')), Action::None);
    assert_eq!(app.view, View::Debugger);
    for (k, cmd) in [
        ('c', DebugCommand::Continue),
        ('s', DebugCommand::Step),
        ('n', DebugCommand::Next),
        ('f', DebugCommand::Finish),
        ('i', DebugCommand::StepInstruction),
        ('x', DebugCommand::Interrupt),
        ('b', DebugCommand::ToggleBreakpoint("track_alloc".into())),
    ] {
        assert_eq!(app.handle_key(Key::Char(k)), Action::Debug(cmd));
        assert!(app.debugger.busy);
        // While a command is in flight, another is not sent.
        assert_eq!(app.handle_key(Key::Char('c')), Action::None);
        app.apply_debug_report(Ok(report(DebugState::Running)));
        assert!(!app.debugger.busy);
    }
    // q and Tab work as everywhere.
    app.handle_key(Key::Tab);
    assert_eq!(app.view, View::Allocations);
    assert_eq!(app.handle_key(Key::Char('q')), Action::Quit);
}

#[test]
fn a_stop_opens_the_debugger_view_and_errors_show() {
    let mut app = App::new(Duration::from_millis(250));
    app.apply_debug_report(Ok(report(DebugState::Running)));
    assert_eq!(app.view, View::Overview, "running: the view stays");
    app.apply_debug_report(Ok(report(DebugState::Stopped(Box::new(stop())))));
    assert_eq!(app.view, View::Debugger);
    assert_eq!(app.debugger.stop().unwrap().pc, 0x8020_4210);
    app.apply_debug_report(Err("the guest is running: stop it first".into()));
    assert_eq!(
        app.debugger.message.as_deref(),
        Some("the guest is running: stop it first")
    );
    assert!(
        app.debugger.stop().is_some(),
        "an error keeps the last state"
    );
}

#[test]
fn stopped_view_renders_source_args_registers_backtrace_and_changes() {
    let mut app = App::new(Duration::from_millis(250));
    app.apply_debug_report(Ok(report(DebugState::Stopped(Box::new(stop())))));
    let (lines, buf) = render(&mut app, 160, 44);
    let text = lines.join("\n");
    for needle in [
        "tracker.rs:85",
        "track_alloc",
        "=>   85     let r = with_tracker",
        "pa = 0x80503000",
        "npages = 4",
        "owner = 7",
        "in {closure#0}",
        "t = 0x80f53d28",
        "tag = \"kstack\"",
        "sp 0x0000000080f43f00",
        "a0 0x0000000080503000",
        "#1  kernel::mm::alloc_pages",
        "+ slot 12   pid 7",
        "- slot 9    pid 5",
        "#1 track_alloc (3 hits)",
        "breakpoint 1 hit",
        "c continue",
        "5 Debugger ●",
        "guest HELD by the debugger",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    // The current line is highlighted, added rows green, removed rows red.
    let (x, y) = find(&lines, "=>   85");
    assert_eq!(buf[(x, y)].bg, Color::Yellow);
    let (x, y) = find(&lines, "+ slot 12");
    assert_eq!(buf[(x, y)].fg, Color::Green);
    let (x, y) = find(&lines, "- slot 9");
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

#[test]
fn running_view_and_small_terminals() {
    let mut app = App::new(Duration::from_millis(250));
    app.handle_key(Key::Char('5'));
    let (lines, _) = render(&mut app, 100, 20);
    let text = lines.join("\n");
    assert!(text.contains("Debugger: running"), "{text}");
    assert!(!text.contains("HELD"), "{text}");
    assert!(text.contains("no breakpoints"), "{text}");
    // Any size draws without panicking, stopped or not.
    app.apply_debug_report(Ok(report(DebugState::Stopped(Box::new(stop())))));
    for (w, h) in [(1, 1), (20, 5), (60, 12), (80, 24)] {
        render(&mut app, w, h);
    }
}

#[test]
fn capital_b_prompts_for_a_location_and_toggles_a_breakpoint_there() {
    let mut app = App::new(Duration::from_millis(250));
    app.handle_key(Key::Char('5'));
    assert_eq!(app.handle_key(Key::Char('B')), Action::None);
    for c in "tracker.rs:177".chars() {
        assert_eq!(
            app.handle_key(Key::Char(c)),
            Action::None,
            "typing goes to the prompt"
        );
    }
    let (l, _) = render(&mut app, 80, 24);
    assert!(
        l.iter().any(|l| l.contains("break at: tracker.rs:177")),
        "{}",
        l.join("\n")
    );
    assert_eq!(
        app.handle_key(Key::Enter),
        Action::Debug(DebugCommand::ToggleBreakpoint("tracker.rs:177".into()))
    );
    assert_eq!(app.prompt, None);
    // Esc cancels without a command; an empty prompt sends nothing.
    app.debugger.busy = false;
    app.handle_key(Key::Char('B'));
    app.handle_key(Key::Char('x'));
    assert_eq!(app.handle_key(Key::Esc), Action::None);
    assert_eq!(app.prompt, None);
    app.handle_key(Key::Char('B'));
    assert_eq!(app.handle_key(Key::Enter), Action::None);
}

#[test]
fn the_breakpoint_prompt_also_enables_disables_and_deletes_by_number() {
    assert_eq!(
        breakpoint_prompt_command("disable 2"),
        DebugCommand::SetEnabled {
            id: 2,
            enabled: false
        }
    );
    assert_eq!(
        breakpoint_prompt_command("enable 2"),
        DebugCommand::SetEnabled {
            id: 2,
            enabled: true
        }
    );
    assert_eq!(
        breakpoint_prompt_command("delete 11"),
        DebugCommand::Remove(11)
    );
    // Anything else is a location (functions may well be called `delete`).
    for text in [
        "delete",
        "delete x",
        "enable 2 3",
        "track_alloc if owner == 2",
    ] {
        assert_eq!(
            breakpoint_prompt_command(text),
            DebugCommand::ToggleBreakpoint(text.into())
        );
    }
}

#[test]
fn h_shows_the_next_hart_and_the_view_names_the_hart_and_its_process() {
    let mut app = App::new(Duration::from_millis(250));
    app.apply_debug_report(Ok(report(DebugState::Stopped(Box::new(stop())))));
    assert_eq!(
        app.handle_key(Key::Char('h')),
        Action::Debug(DebugCommand::NextHart)
    );
    let (lines, _) = render(&mut app, 160, 44);
    let text = lines.join("\n");
    assert!(text.contains("hart 1/2 churn(7) · "), "{text}");
    assert!(text.contains("h next hart"), "{text}");
    // Switched to hart 0, idle in its scheduler: the view says so, and where the stop was.
    let mut other = stop();
    other.hart = Some(0);
    other.process = None;
    app.apply_debug_report(Ok(report(DebugState::Stopped(Box::new(other)))));
    let (lines, _) = render(&mut app, 160, 44);
    let text = lines.join("\n");
    assert!(
        text.contains("hart 0/2 idle (stopped on hart 1) · "),
        "{text}"
    );
}

#[test]
fn the_next_hart_wraps_and_one_hart_has_none() {
    let mut v = stop();
    assert_eq!(v.next_hart(), Some(0));
    v.hart = Some(0);
    assert_eq!(v.next_hart(), Some(1));
    v.hart = None;
    assert_eq!(v.next_hart(), Some(0), "unknown: the first");
    v.harts = vec![0];
    assert_eq!(v.next_hart(), None);
}
