//! The header line: connection state (or that the data is a demo), guest state, hart → the
//! process it runs (`hart0: sh(1) hart1: idle`, when the kernel records harts), refresh
//! interval, last pause, running share.

use super::truncate_start;
use crate::model::ReadPath;
use crate::source::Timeline;
use crate::tui::app::{App, Connection};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Longest error text shown in the header: its end, where the root cause is (the footer
/// shows all of it).
const REASON_MAX: usize = 46;

pub fn draw_header(f: &mut Frame, area: Rect, app: &App) {
    let sep = || Span::styled(" │ ", Style::new().fg(Color::DarkGray));
    let (conn, conn_style) = match &app.connection {
        Connection::Connecting => ("◌ connecting…".to_string(), Style::new().fg(Color::Yellow)),
        Connection::Connected if app.is_demo() => (
            "● DEMO: a simulated kernel, not QEMU".to_string(),
            Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
        ),
        Connection::Connected if app.replay.is_some() => (
            "● REPLAY of a recording".to_string(),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Connection::Connected if app.is_recorded() => (
            "● memory dump: a stopped kernel".to_string(),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ),
        Connection::Connected => ("● connected".to_string(), Style::new().fg(Color::Green)),
        Connection::Disconnected { reason } => (
            format!("✖ disconnected: {}", truncate_start(reason, REASON_MAX)),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Connection::Reconnecting { attempt, reason } => (
            format!(
                "↻ reconnecting (try {attempt}): {}",
                truncate_start(reason, REASON_MAX)
            ),
            Style::new().fg(Color::Yellow),
        ),
        Connection::Waiting { reason } => (
            format!("◌ waiting: {}", truncate_start(reason, REASON_MAX)),
            Style::new().fg(Color::Yellow),
        ),
    };
    let mut spans = vec![
        Span::styled("Leakscope", Style::new().add_modifier(Modifier::BOLD)),
        sep(),
        Span::styled(conn, conn_style),
        sep(),
    ];
    // Between snapshots the guest runs: the sampler halts it only for the reads. At a
    // debugger stop it stays halted until the user continues.
    let held = app.debugger.stop().is_some();
    if let Some(control) = &app.replay {
        spans.push(timeline_span(&control.timeline()));
        f.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    }
    let gdb_holds = app.gdb.as_deref().filter(|l| l.starts_with("held by gdb"));
    spans.push(if let Some(line) = gdb_holds {
        // The views keep showing the tracker as it is at gdb's stop.
        Span::styled(
            format!("guest {line}"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )
    } else if held {
        Span::styled(
            "guest HELD by the debugger (5, c continues)",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        )
    } else {
        match (&app.connection, app.paused) {
            (Connection::Connected, false) => Span::raw("guest running"),
            (Connection::Connected, true) => Span::styled(
                "guest running, updates PAUSED",
                Style::new().fg(Color::Yellow),
            ),
            (_, true) => Span::styled("updates PAUSED", Style::new().fg(Color::Yellow)),
            (_, false) => Span::raw("guest ?"),
        }
    });
    let harts = app.hart_processes();
    if !harts.is_empty() {
        spans.push(sep());
        let text: Vec<String> = harts
            .iter()
            .map(|(h, p)| format!("hart{h}: {}", p.as_deref().unwrap_or("idle")))
            .collect();
        spans.push(Span::raw(text.join(" ")));
    }
    if let Some(line) = app.gdb.as_deref().filter(|_| gdb_holds.is_none()) {
        spans.push(sep());
        spans.push(Span::styled(line.to_string(), Style::new().fg(Color::Cyan)));
    }
    spans.push(sep());
    spans.push(Span::raw(format!("every {}", fmt_interval(app.interval))));
    if let Some(s) = &app.latest {
        spans.push(sep());
        spans.push(if s.mid_change {
            Span::styled(
                "tracker mid-change: showing the last consistent state",
                Style::new().fg(Color::Yellow),
            )
        } else if s.read_path == ReadPath::Ram {
            Span::styled(
                "read from RAM: costs the guest nothing",
                Style::new().fg(Color::Green),
            )
        } else {
            Span::raw(format!(
                "pause {}µs{}",
                s.pause_us,
                if app.is_demo() { " (simulated)" } else { "" }
            ))
        });
    }
    let from_ram = app
        .latest
        .as_ref()
        .is_some_and(|s| s.read_path == ReadPath::Ram);
    if let Some(share) = app.running_share.filter(|_| !held && !from_ram) {
        spans.push(sep());
        spans.push(Span::raw(format!("ran {:.1}%", share * 100.0)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `▶ 12.3s / 1m20.0s ×2 · event 1234/5678`, and the damage if the recording has some.
fn timeline_span(t: &Timeline) -> Span<'static> {
    let state = if t.playing { "▶" } else { "⏸" };
    let mut text = format!(
        "{state} {} / {} ×{} · event {}/{} · frame {}/{}",
        fmt_time(t.time),
        fmt_time(t.duration),
        t.speed,
        t.event,
        t.events,
        t.frame + 1,
        t.frames
    );
    if t.pos.partial.is_some() {
        text.push_str(" (between samples)");
    }
    if t.damage.is_some() {
        text.push_str(" · DAMAGED: ends early");
    }
    Span::styled(text, Style::new().fg(Color::Cyan))
}

/// `12.3s`, `1m20.0s`.
fn fmt_time(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:04.1}s", (s / 60.0) as u64, s % 60.0)
    }
}

fn fmt_interval(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}
