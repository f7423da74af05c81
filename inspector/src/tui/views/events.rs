//! The leaks and events view: per-exit leak reports (from `ExitReclaim` events) above the
//! event history, newest first, with the missed-events count.

use super::{body_block, draw_waiting, owner_color, secs};
use crate::model::EventKind;
use crate::tui::app::App;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub fn draw_events(f: &mut Frame, area: Rect, app: &App) {
    if app.latest.is_none() && app.events.is_empty() {
        return draw_waiting(f, area, "Leaks & events", app);
    }
    let leaks = app.visible_leaks();
    let n_reports = leaks.len() as u16;
    // Leaks get what they need up to 40% of the body (at least 3 rows with borders).
    // Leaks get two lines per report (they wrap) up to 40% of the body, at least 3 rows
    // with the borders.
    // A report's sites (when the kernel records them) add a line each.
    let site_lines: u16 = leaks.iter().map(|r| r.sites.len() as u16).sum();
    let leak_rows =
        (n_reports.max(1).saturating_mul(2) + site_lines + 2).min((area.height * 2 / 5).max(3));
    let [leak_area, ev_area] =
        Layout::vertical([Constraint::Length(leak_rows), Constraint::Min(0)]).areas(area);

    let leak_lines: Vec<Line> = if n_reports == 0 {
        vec![Line::from(Span::styled(
            "no exit has left pages behind yet",
            Style::new().fg(Color::DarkGray),
        ))]
    } else {
        leaks
            .iter()
            .flat_map(|r| {
                let summary = Line::from(vec![
                    Span::styled(
                        format!("{} ", secs(r.time, app.timebase_hz())),
                        Style::new().fg(Color::DarkGray),
                    ),
                    Span::styled(r.summary(), Style::new().fg(owner_color(r.pid))),
                ]);
                // Then the leaked pages by the line that allocated them.
                let sites = r.sites.iter().map(|s| {
                    Line::from(Span::styled(
                        format!("    {}", s.line()),
                        Style::new().fg(owner_color(r.pid)),
                    ))
                });
                std::iter::once(summary).chain(sites)
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(leak_lines)
            .wrap(Wrap { trim: false })
            .block(body_block(format!(
                " Leaks: {n_reports} exits with leftovers "
            ))),
        leak_area,
    );

    let events = app.visible_events();
    let missed = if app.missed_events > 0 {
        format!(" · {} MISSED (ring overwritten) ", app.missed_events)
    } else {
        String::new()
    };
    let filter = app
        .filter
        .as_ref()
        .map(|f| format!(" · filter {}", f.label()))
        .unwrap_or_default();
    let scrolled = if app.events_scroll > 0 {
        format!(" · ↓{} newer above", app.events_scroll)
    } else {
        String::new()
    };
    let mut block = body_block(format!(
        " Events {}/{}{filter}{missed}{scrolled} ",
        events.len(),
        app.events.len()
    ));
    if app.missed_events > 0 {
        block = block.border_style(Style::new().fg(Color::Red));
    }
    let lines: Vec<Line> = events
        .iter()
        .skip(app.events_scroll)
        .take(ev_area.height as usize)
        .map(|e| {
            let (kind, style) = match &e.kind {
                EventKind::Alloc => ("alloc".to_string(), Style::new()),
                EventKind::Free => ("free".to_string(), Style::new().fg(Color::DarkGray)),
                EventKind::ExitReclaim => (
                    "RECLAIM".to_string(),
                    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
                ),
                EventKind::AllocFailed => ("FAILED".to_string(), Style::new().fg(Color::Red)),
                EventKind::InvalidFree => ("BAD FREE".to_string(), Style::new().fg(Color::Red)),
                EventKind::Other(n) => (n.clone(), Style::new()),
            };
            Line::from(vec![
                Span::styled(
                    format!("{:>6} {:>10} ", e.seq, secs(e.time, app.timebase_hz())),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(format!("{kind:<8} "), style),
                Span::styled(
                    format!(
                        "pid {:<3} {:<8} ",
                        e.owner,
                        app.name_of(e.owner).unwrap_or("?")
                    ),
                    Style::new().fg(owner_color(e.owner)),
                ),
                Span::raw(format!("{:#x} {:>3} p {}", e.pa, e.npages, e.tag)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block), ev_area);
}
