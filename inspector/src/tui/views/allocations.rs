//! The allocations view: every live entry passing the filter, in the chosen sort order, with
//! a selection that scrolls.

use super::{body_block, draw_waiting, kib, owner_color, secs, truncate};
use crate::tui::app::App;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

pub fn draw_allocations(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.latest else {
        return draw_waiting(f, area, "Allocations", app);
    };
    let entries = app.visible_entries();
    let filter = app
        .filter
        .as_ref()
        .map(|f| format!(" · filter {}", f.label()))
        .unwrap_or_default();
    // The SITE column, and the keys that open a site's source, only for a kernel that records
    // sites.
    let sites = s.entries.iter().any(|e| e.site.is_some());
    let keys = if sites {
        " · Enter kernel site · u user site"
    } else {
        ""
    };
    let block = body_block(format!(
        " Allocations {}/{} · sort {}{filter}{keys} ",
        entries.len(),
        s.entries.len(),
        app.sort.label()
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);

    // Only the rows that fit are built: the window keeps the selection on screen.
    let height = inner.height.saturating_sub(1) as usize;
    let sel = app.alloc_sel.min(entries.len().saturating_sub(1));
    let offset = (sel + 1).saturating_sub(height.max(1));
    let rows: Vec<Row> = entries
        .iter()
        .skip(offset)
        .take(height)
        .map(|e| {
            Row::new(vec![
                Cell::from(e.slot.to_string()),
                Cell::from(format!("{:#x}", e.pa)),
                Cell::from(e.npages.to_string()),
                Cell::from(kib(e.npages).to_string()),
                Cell::from(e.owner.to_string()).style(Style::new().fg(owner_color(e.owner))),
                Cell::from(truncate(app.name_of(e.owner).unwrap_or("?"), 10)),
                Cell::from(e.tag.to_string()),
                Cell::from(secs(e.time, app.timebase_hz())),
                Cell::from(if sites { e.site_label() } else { String::new() }),
            ])
        })
        .collect();
    let header = Row::new(vec![
        "SLOT",
        "PA",
        "PAGES",
        "KiB",
        "PID",
        "NAME",
        "TAG",
        "ALLOCATED",
        if sites { "SITE" } else { "" },
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let widths = [
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(10),
        if sites {
            Constraint::Length(16)
        } else {
            Constraint::Min(8)
        },
        Constraint::Length(11),
        // The line that allocated: last, so the columns before it keep their places.
        if sites {
            Constraint::Min(8)
        } else {
            Constraint::Length(0)
        },
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(if entries.is_empty() || height == 0 {
        None
    } else {
        Some(sel - offset)
    });
    f.render_stateful_widget(table, inner, &mut state);
}
