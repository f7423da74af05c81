//! Drawing only: every function here reads `&App` and renders into a ratatui `Frame`; none
//! changes state. Screen layout, top to bottom: header line, view tabs, body, footer line.

mod allocations;
mod debugger;
mod events;
mod header;
mod overview;
mod pagemap;

pub use allocations::draw_allocations;
pub use debugger::draw_debugger;
pub use events::draw_events;
pub use header::draw_header;
pub use overview::draw_overview;
pub use pagemap::{
    areas as pagemap_areas, draw_pagemap, EMPTY as EMPTY_CELL, FULL as FULL_CELL,
    IMAGE as IMAGE_CELL, PART as PART_CELL,
};

use super::app::{App, Connection, View};
use super::input::KEYMAP;
use super::prompt::PromptKind;
use crate::model::KERNEL_PID;
use crate::riscv::PAGE_SIZE;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

/// Draws the whole screen for `app`. Any size works, down to 1×1 (parts that do not fit are
/// clipped or left out).
pub fn draw(f: &mut Frame, app: &App) {
    let [header, tabs, body, footer] = screen_layout(f.area());
    draw_header(f, header, app);
    draw_tabs(f, tabs, app);
    match app.view {
        View::Overview => draw_overview(f, body, app),
        View::Allocations => draw_allocations(f, body, app),
        View::PageMap => draw_pagemap(f, body, app),
        View::Events => draw_events(f, body, app),
        View::Debugger => draw_debugger(f, body, app),
    }
    draw_footer(f, footer, app);
    if app.show_help {
        draw_help(f, f.area());
    }
}

/// Header, tabs, body and footer areas of the screen. The body is what is left after three
/// one-line bars (`pagemap::PAGEMAP_CHROME` relies on this).
pub fn screen_layout(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area)
}

fn draw_tabs(f: &mut Frame, area: Rect, app: &App) {
    let mut spans = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let style = if *v == app.view {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!(" {} {} ", i + 1, v.title()), style));
        spans.push(Span::raw(" "));
    }
    // The debugger is not in the Tab cycle; its tab shows whether the guest is held.
    let style = if app.view == View::Debugger {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else if app.debugger.stop().is_some() {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let held = if app.debugger.stop().is_some() {
        " ●"
    } else {
        ""
    };
    spans.push(Span::styled(
        format!(" 5 {}{held} ", View::Debugger.title()),
        style,
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(f: &mut Frame, area: Rect, app: &App) {
    let line = if let Some(prompt) = &app.prompt {
        let (label, hint) = match prompt.kind {
            PromptKind::Breakpoint => (
                "break at: ",
                "  Enter · Esc cancel · LOCATION [if COND] toggles · enable/disable/delete N",
            ),
            PromptKind::Filter => ("/", "  Enter apply · Esc cancel · pid:N tag:T or text"),
            PromptKind::Seek => (
                "jump to: ",
                "  Enter · Esc cancel · 12s, 1m20s, start or end",
            ),
        };
        Line::from(vec![
            Span::styled(label, Style::new().fg(Color::Yellow)),
            Span::raw(prompt.text().to_string()),
            Span::styled("▏", Style::new().fg(Color::Yellow)),
            Span::styled(hint, Style::new().fg(Color::DarkGray)),
        ])
    } else if let Some(msg) = &app.status {
        Line::from(vec![
            Span::styled(msg.clone(), Style::new().fg(Color::Yellow)),
            Span::styled("  (Esc)", Style::new().fg(Color::DarkGray)),
        ])
    } else if let Connection::Disconnected { reason } | Connection::Reconnecting { reason, .. } =
        &app.connection
    {
        // The whole error, which the header can only show the end of.
        Line::from(vec![
            Span::styled(reason.clone(), Style::new().fg(Color::Red)),
            Span::styled(" · ? help · q quit", Style::new().fg(Color::DarkGray)),
        ])
    } else {
        let mut spans = vec![Span::styled(
            "? help · q quit · Tab view · p pause · +/- interval · s sort · / filter",
            Style::new().fg(Color::DarkGray),
        )];
        if let Some(flt) = &app.filter {
            spans.insert(
                0,
                Span::styled(
                    format!("filter {} (Esc clears) · ", flt.label()),
                    Style::new().fg(Color::Yellow),
                ),
            );
        }
        Line::from(spans)
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The key list, centred over `area`.
pub fn draw_help(f: &mut Frame, area: Rect) {
    let width = 60.min(area.width);
    let height = (KEYMAP.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = KEYMAP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), Style::new().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        " Filters apply to allocations, events and leaks.",
        Style::new().fg(Color::DarkGray),
    )));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        popup,
    );
}

/// A bordered block for a view body.
fn body_block(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}

/// A message in the body when there is nothing to show yet.
fn draw_waiting(f: &mut Frame, area: Rect, title: &str, app: &App) {
    let text = match &app.connection {
        Connection::Connected => "no snapshot yet".to_string(),
        _ => "waiting for the first snapshot (see the header for the connection)".to_string(),
    };
    f.render_widget(
        Paragraph::new(text).block(body_block(format!(" {title} "))),
        area,
    );
}

/// Colour of an owner in the page map and legends: the kernel red, processes cycle a palette.
pub fn owner_color(pid: u32) -> Color {
    const PALETTE: [Color; 8] = [
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::LightGreen,
        Color::LightBlue,
        Color::LightMagenta,
    ];
    if pid == KERNEL_PID {
        Color::Red
    } else {
        PALETTE[pid as usize % PALETTE.len()]
    }
}

/// The last `width` values of `series` as block characters scaled to their maximum
/// (a blank for zero).
pub fn sparkline(series: &[u64], width: usize) -> String {
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &series[series.len().saturating_sub(width)..];
    let max = tail.iter().copied().max().unwrap_or(0);
    tail.iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                BARS[0]
            } else {
                BARS[(1 + (v * 7) / max).min(8) as usize]
            }
        })
        .collect()
}

/// Pages as KiB.
pub fn kib(pages: u64) -> u64 {
    pages * PAGE_SIZE / 1024
}

/// Timer ticks as seconds since boot, e.g. `12.345s`, at `timebase_hz` (the tracker header's
/// timer frequency); raw ticks (`1234t`) when the kernel does not say.
pub fn secs(ticks: u64, timebase_hz: u64) -> String {
    if timebase_hz == 0 {
        return format!("{ticks}t");
    }
    format!("{:.3}s", ticks as f64 / timebase_hz as f64)
}

/// The end of `s` in at most `max` characters, with a leading `…` when cut.
pub fn truncate_start(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t = String::from("…");
        t.extend(s.chars().skip(n - (max - 1)));
        t
    }
}

/// `s` cut to `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod time_tests {
    use super::secs;

    #[test]
    fn ticks_convert_at_the_kernels_timer_frequency() {
        assert_eq!(secs(12_345_000, 10_000_000), "1.234s");
        assert_eq!(secs(12_345_000, 1_000_000), "12.345s");
        assert_eq!(secs(42, 0), "42t", "unknown frequency: raw ticks");
    }
}
