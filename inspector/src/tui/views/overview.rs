//! The overview: a row per PID (kernel first), the untracked and free rows, totals, table
//! fill and the failure counters.

use super::{body_block, draw_waiting, kib, sparkline, truncate};
use crate::model::ProcState;
use crate::tui::app::App;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

/// Characters of page history per row.
const SPARK_WIDTH: u16 = 12;

pub fn draw_overview(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.latest else {
        return draw_waiting(f, area, "Overview", app);
    };
    let h = &s.header;
    let block = body_block(format!(
        " Overview · {} pages RAM ({} MiB) ",
        h.ram_pages,
        kib(h.ram_pages) / 1024
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let [table_area, totals_area] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner);

    let share = |pages: u64| {
        if h.ram_pages == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", pages as f64 * 100.0 / h.ram_pages as f64)
        }
    };
    let rows_data = app.overview_rows();
    let mut rows: Vec<Row> = rows_data
        .iter()
        .map(|r| {
            let p = &r.summary;
            let tags: Vec<String> = p
                .tags
                .iter()
                .take(3)
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            let style = if p.pid == 0 {
                Style::new().fg(Color::Red)
            } else if p.state == ProcState::Gone {
                Style::new().fg(Color::DarkGray)
            } else {
                Style::new()
            };
            Row::new(vec![
                Cell::from(p.pid.to_string()),
                Cell::from(truncate(&p.name, 10)),
                Cell::from(truncate(p.state.as_str(), 8)),
                Cell::from(p.allocs.to_string()),
                Cell::from(p.pages.to_string()),
                Cell::from(kib(p.pages).to_string()),
                Cell::from(share(p.pages)),
                Cell::from(tags.join(", ")),
                Cell::from(sparkline(&r.history, SPARK_WIDTH as usize)),
            ])
            .style(style)
        })
        .collect();
    let untracked = s.untracked_used_pages();
    // With `alloc_base` exported, every page the allocator manages is tracked or free, so the
    // rest is exactly what lies below it.
    let (name, what) = if s.header.alloc_base > s.header.ram_base {
        ("image", "firmware + kernel image")
    } else {
        ("untracked", "kernel image, boot")
    };
    let dim = Style::new().fg(Color::DarkGray);
    rows.push(
        Row::new(vec![
            Cell::from("-"),
            Cell::from(name),
            Cell::from("used"),
            Cell::from("-"),
            Cell::from(untracked.to_string()),
            Cell::from(kib(untracked).to_string()),
            Cell::from(share(untracked)),
            Cell::from(what),
            Cell::from(""),
        ])
        .style(dim),
    );
    let free_hist: Vec<u64> = app.free_history.iter().copied().collect();
    rows.push(
        Row::new(vec![
            Cell::from("-"),
            Cell::from("free"),
            Cell::from("-"),
            Cell::from("-"),
            Cell::from(h.free_pages.to_string()),
            Cell::from(kib(h.free_pages).to_string()),
            Cell::from(share(h.free_pages)),
            Cell::from(""),
            Cell::from(sparkline(&free_hist, SPARK_WIDTH as usize)),
        ])
        .style(Style::new().fg(Color::Green)),
    );
    let header = Row::new(vec![
        "PID",
        "NAME",
        "STATE",
        "ALLOCS",
        "PAGES",
        "KiB",
        "RAM",
        "TOP TAGS",
        "PAGES/TIME",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Min(8),
        Constraint::Length(SPARK_WIDTH),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.overview_sel));
    f.render_stateful_widget(table, table_area, &mut state);

    let warn = |n: u64| {
        if n > 0 {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        }
    };
    let fill = if h.capacity == 0 {
        0.0
    } else {
        h.count as f64 * 100.0 / h.capacity as f64
    };
    let totals = vec![
        Line::from(vec![Span::raw(format!(
            "tracked {} allocs, {} pages ({} KiB) · table {}/{} ({fill:.1}%) · hwm {}",
            s.entries.len(),
            h.tracked_pages,
            kib(h.tracked_pages),
            h.count,
            h.capacity,
            h.high_water
        ))]),
        Line::from(vec![
            Span::styled(format!("failed {}", h.failed_allocs), warn(h.failed_allocs)),
            Span::raw(" · "),
            Span::styled(
                format!("invalid frees {}", h.invalid_frees),
                warn(h.invalid_frees),
            ),
            Span::styled(
                format!(
                    " · allocs {} · frees {} · reclaimed {} allocs {} p",
                    h.total_allocs, h.total_frees, h.reclaimed_allocs, h.reclaimed_pages
                ),
                Style::new().fg(Color::DarkGray),
            ),
        ]),
    ];
    f.render_widget(Paragraph::new(totals), totals_area);
}
