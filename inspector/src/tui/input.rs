//! Input mapping: crossterm key events → the TUI's own `Key`, and the key table the help popup
//! shows. What a key *does* is `App::handle_key`'s business; this module only names keys.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A key the TUI reacts to, independent of the terminal library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Backspace,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    /// Ctrl-C: quits from anywhere (raw mode turns off SIGINT).
    CtrlC,
}

/// Maps a crossterm key event. `None` for releases and keys the TUI ignores.
pub fn from_crossterm(ev: &KeyEvent) -> Option<Key> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = ev.modifiers.contains(KeyModifiers::CONTROL);
    Some(match ev.code {
        KeyCode::Char('c') if ctrl => Key::CtrlC,
        KeyCode::Char(_) if ctrl => return None,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        _ => return None,
    })
}

/// (keys, what they do), as the help popup lists them. Keep in step with `App::handle_key`.
pub const KEYMAP: &[(&str, &str)] = &[
    ("?", "help (Esc or ? closes)"),
    ("q, Ctrl-C", "quit (the guest keeps running)"),
    ("Tab, 1-4", "switch view (Shift-Tab back)"),
    ("p, Space", "pause / resume live updates"),
    ("+ / -", "refresh interval longer / shorter"),
    ("s", "cycle sort: pa, pages, owner, tag, age"),
    ("/", "filter: pid:7, tag:heap, or text"),
    ("Esc", "close prompt, clear message/filter"),
    ("arrows, PgUp/Dn", "move cursor / scroll"),
    ("Home / End", "first / last"),
    ("Enter", "overview: show the PID's allocations"),
    (
        "Enter / u",
        "allocations: the kernel / user site's source (view 5)",
    ),
    ("u, Esc", "site source: other site, back"),
    ("5", "debugger view (opens by itself at a breakpoint)"),
    ("b", "debugger: toggle a breakpoint on track_alloc"),
    (
        "B",
        "debugger: breakpoint prompt: LOCATION [if COND], enable/disable/delete N",
    ),
    ("c / x", "debugger: continue / interrupt"),
    ("Space, p", "replay: play / pause"),
    (", / .", "replay: one event back / forward"),
    ("[ / ]", "replay: slower / faster"),
    ("g, r, G", "replay: jump to a time, rewind, to the end"),
    ("s n f i", "debugger: step, next, finish, stepi"),
    (
        "h",
        "debugger: show the next hart (registers, backtrace; steps step it)",
    ),
];
