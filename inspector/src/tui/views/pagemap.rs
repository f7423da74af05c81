//! The page map: physical RAM as a grid of cells (a page, or a run of pages on small screens),
//! coloured by owner, with a cursor and a legend.
//!
//! Honesty rule: the tracker says *which* pages each allocation holds. When the kernel also
//! exports `alloc_base` (the first page its allocator manages), every page from there on that
//! no allocation holds is free, and the pages below it are firmware and kernel image; without
//! it, pages without an allocation are drawn as "free or untracked".

use super::{body_block, draw_waiting, owner_color, truncate};
use crate::riscv::PAGE_SIZE;
use crate::tui::app::App;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// Cell fully held by one owner.
pub const FULL: char = '█';
/// Cell shared by several owners, or partly owned.
pub const PART: char = '▒';
/// Cell with no tracked pages: free (or, without `alloc_base`, free or untracked).
pub const EMPTY: char = '·';
/// Cell below the allocator's base: firmware and kernel image, never allocated.
pub const IMAGE: char = '▓';

/// The grid and legend areas inside the page-map body (borders excluded).
pub fn areas(body: Rect) -> [Rect; 2] {
    let inner = body_block(String::new()).inner(body);
    Layout::vertical([Constraint::Min(0), Constraint::Length(3)]).areas(inner)
}

pub fn draw_pagemap(f: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.latest else {
        return draw_waiting(f, area, "Page map", app);
    };
    let h = &s.header;
    let grid = app.page_grid();
    let per_cell = if grid.pages_per_cell == 1 {
        "1 page".to_string()
    } else {
        format!("{} pages", grid.pages_per_cell)
    };
    f.render_widget(
        body_block(format!(
            " Page map {:#x} · {} pages · 1 cell = {per_cell} ",
            h.ram_base, h.ram_pages
        )),
        area,
    );
    let [grid_area, legend_area] = areas(area);

    let cells = app.page_cells(&grid);
    let cursor_cell = app.page_cursor / grid.pages_per_cell.max(1);
    let buf: &mut Buffer = f.buffer_mut();
    for (i, c) in cells.iter().enumerate() {
        let (col, row) = (
            i as u64 % u64::from(grid.cols.max(1)),
            i as u64 / u64::from(grid.cols.max(1)),
        );
        if col >= u64::from(grid_area.width) || row >= u64::from(grid_area.height) {
            continue; // the grid is sized for this area; never draw outside it
        }
        let (ch, color) = match c.owner {
            None if c.pages > 0 && c.reserved == c.pages => (IMAGE, Color::Gray),
            None => (EMPTY, Color::DarkGray),
            Some(o) if !c.mixed && c.owned == c.pages => (FULL, owner_color(o)),
            Some(o) => (PART, owner_color(o)),
        };
        let mut style = Style::new().fg(color);
        if i as u64 == cursor_cell {
            style = style.bg(Color::White).add_modifier(Modifier::BOLD);
        }
        let x = grid_area.x + col as u16;
        let y = grid_area.y + row as u16;
        buf[(x, y)].set_char(ch).set_style(style);
    }

    // Legend: symbols, then the owners present (most pages first, as many as fit).
    let mut owners: Vec<(u32, u64)> = Vec::new();
    for e in s.entries.iter() {
        match owners.iter_mut().find(|(o, _)| *o == e.owner) {
            Some((_, n)) => *n += e.npages,
            None => owners.push((e.owner, e.npages)),
        }
    }
    owners.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    // Whether the kernel says where its allocator starts: then untracked pages are free.
    let exact = h.alloc_base > h.ram_base;
    let reserved = h.alloc_base.saturating_sub(h.ram_base) / PAGE_SIZE;
    let mut legend = vec![Span::raw(format!("{FULL} one owner {PART} shared/partly "))];
    if exact {
        legend.push(Span::styled(
            format!("{IMAGE} firmware+kernel "),
            Style::new().fg(Color::Gray),
        ));
        legend.push(Span::styled(
            format!("{EMPTY} free "),
            Style::new().fg(Color::DarkGray),
        ));
    } else {
        legend.push(Span::styled(
            format!("{EMPTY} free or untracked "),
            Style::new().fg(Color::DarkGray),
        ));
    }
    for (o, _) in owners.iter().take(8) {
        let name = app.name_of(*o).unwrap_or("?");
        legend.push(Span::styled(
            format!(
                "■{} ",
                if *o == 0 {
                    "kernel".to_string()
                } else {
                    format!("{}:{}", o, truncate(name, 8))
                }
            ),
            Style::new().fg(owner_color(*o)),
        ));
    }

    let first = cursor_cell * grid.pages_per_cell;
    let n = grid.pages_per_cell.min(h.ram_pages.saturating_sub(first));
    let pa = h.ram_base + first * PAGE_SIZE;
    let here = app.entries_in_pages(first, n);
    let at = if n <= 1 {
        format!("page {first} {pa:#x}: ")
    } else {
        format!("pages {first}-{}: ", first + n - 1)
    };
    let what = match here.as_slice() {
        [] if exact && first < reserved => "firmware / kernel image (never allocated)".to_string(),
        [] if exact => "free".to_string(),
        [] => "free or untracked (no allocation)".to_string(),
        [e, rest @ ..] => format!(
            "{}pid {} {} tag {} slot {} {:#x} {}p",
            if rest.is_empty() {
                String::new()
            } else {
                format!("{} allocs, 1st: ", rest.len() + 1)
            },
            e.owner,
            app.name_of(e.owner).unwrap_or("?"),
            e.tag,
            e.slot,
            e.pa,
            e.npages
        ),
    };
    let lines = vec![
        Line::from(legend),
        Line::from(vec![
            Span::styled(at, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(what),
        ]),
        Line::from(Span::styled(
            if exact {
                format!(
                    "free {} · firmware+kernel image {} pages · arrows move",
                    h.free_pages, reserved
                )
            } else {
                format!(
                    "free {} (a count: the tracker does not say which) · untracked used {} · arrows move",
                    h.free_pages,
                    s.untracked_used_pages()
                )
            },
            Style::new().fg(Color::DarkGray),
        )),
    ];
    f.render_widget(Paragraph::new(lines), legend_area);
}
