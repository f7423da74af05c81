//! The debugger view: source around the current line, the stopped function's arguments,
//! registers, backtrace, the tracker rows that changed since the previous stop (added green,
//! removed red), the breakpoints and the keys; or, opened from the allocations view, an
//! allocation's call site in its source. Drawing only.

use super::{body_block, truncate, truncate_start};
use crate::debugger::live::DebugState;
use crate::debugger::{SourceLine, StopView};
use crate::tui::app::App;
use crate::tui::debugger::{DebugPane, SiteSource};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

const KEYS: &str =
    "c continue · s step · n next · f finish · i stepi · x interrupt · b break track_alloc · B break at… · h next hart";
/// The keys while an allocation's site is shown (`c`…`B` still apply and close it).
const SITE_KEYS: &str = "u other site · Esc back · c s n f i x b B as in the debugger";

/// Draws the debugger view of `app` into `area`.
pub fn draw_debugger(f: &mut Frame, area: Rect, app: &App) {
    let pane = &app.debugger;
    let [main, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(area);
    draw_status(f, status, pane);
    match (&pane.site, pane.stop()) {
        (Some(site), _) => draw_site(f, main, site),
        (None, Some(stop)) => draw_stop(f, main, stop),
        (None, None) => draw_running(f, main, pane),
    }
}

/// An allocation's site opened from the allocations view: its source, the line marked.
fn draw_site(f: &mut Frame, area: Rect, site: &SiteSource) {
    let s = site.site();
    let switch = match site.other() {
        Some(other) => format!(" · u {}", other.label()),
        None => String::new(),
    };
    let title = format!(
        " {} {}:{} · {}{switch} · Esc back ",
        site.shown.label(),
        truncate_start(&s.file, 50),
        s.line,
        truncate(&s.function, 40),
    );
    let lines = if site.lines.is_empty() {
        vec![Line::from(Span::styled(
            format!("({} not found on this machine)", s.file),
            Style::new().fg(Color::DarkGray),
        ))]
    } else {
        source_text(&site.lines, area.height)
    };
    f.render_widget(Paragraph::new(lines).block(body_block(title)), area);
}

/// `source` as lines for a bordered pane `height` rows high, the current line marked and in
/// view.
fn source_text(source: &[SourceLine], height: u16) -> Vec<Line<'static>> {
    // Keep the current line in view: skip lines above it that do not fit.
    let rows = height.saturating_sub(2) as usize;
    let cur = source.iter().position(|l| l.current).unwrap_or(0);
    let skip = cur.saturating_sub(rows / 2);
    source
        .iter()
        .skip(skip)
        .map(|l| {
            let (mark, style) = if l.current {
                (
                    "=>",
                    Style::new()
                        .fg(Color::Black)
                        .bg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                )
            } else {
                ("  ", Style::new())
            };
            Line::from(Span::styled(
                format!("{mark}{:5} {}", l.number, l.text),
                style,
            ))
        })
        .collect()
}

fn draw_status(f: &mut Frame, area: Rect, pane: &DebugPane) {
    let bps = pane
        .report
        .as_ref()
        .map(|r| {
            r.breakpoints
                .iter()
                .map(|b| {
                    format!(
                        "#{} {}{}{} ({} hits)",
                        b.id,
                        b.location,
                        b.condition
                            .as_ref()
                            .map(|c| format!(" if {c}"))
                            .unwrap_or_default(),
                        if b.enabled { "" } else { " [off]" },
                        b.hits
                    )
                })
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "no breakpoints".into());
    let mut first = vec![Span::styled(
        format!("breakpoints: {bps}"),
        Style::new().fg(Color::Cyan),
    )];
    if pane.busy {
        first.push(Span::styled("  working…", Style::new().fg(Color::Yellow)));
    } else if let Some(m) = &pane.message {
        first.push(Span::styled(
            format!("  {m}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    let lines = vec![
        Line::from(first),
        Line::from(Span::styled(
            if pane.site.is_some() { SITE_KEYS } else { KEYS },
            Style::new().fg(Color::DarkGray),
        )),
    ];
    f.render_widget(Paragraph::new(lines), area);
}

fn draw_running(f: &mut Frame, area: Rect, pane: &DebugPane) {
    let text = match pane.report.as_ref().map(|r| &r.state) {
        Some(DebugState::Running) | None => vec![
            Line::from("The guest is running; live updates continue in the other views."),
            Line::from(""),
            Line::from("b sets a breakpoint on track_alloc (b again removes it); the view opens"),
            Line::from("by itself when a breakpoint is hit. x interrupts the guest where it is."),
            Line::from("B breaks anywhere: a function, file:line or *0xADDRESS (again: removes)."),
            Line::from("In the allocations view (2), Enter shows the selected allocation's kernel"),
            Line::from("site here in its source, u the program's line that asked for it."),
        ],
        Some(DebugState::Stopped(_)) => unreachable!("stop() handled it"),
    };
    f.render_widget(
        Paragraph::new(text).block(body_block(" Debugger: running ".into())),
        area,
    );
}

fn draw_stop(f: &mut Frame, area: Rect, stop: &StopView) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(area);
    let [source, side] =
        Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(top);
    let arg_lines = stop.args.0.len().max(1)
        + stop
            .inlined_args
            .iter()
            .map(|(_, a)| a.0.len() + 1)
            .sum::<usize>();
    let [args, regs] = Layout::vertical([
        Constraint::Length((arg_lines as u16).saturating_add(2)),
        Constraint::Min(0),
    ])
    .areas(side);
    let [backtrace, changed] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_source(f, source, stop);
    draw_args(f, args, stop);
    draw_registers(f, regs, stop);
    draw_backtrace(f, backtrace, stop);
    draw_changed(f, changed, stop);
}

fn draw_source(f: &mut Frame, area: Rect, stop: &StopView) {
    let title = match &stop.position {
        Some(p) => format!(
            " {}:{} · {} · pc {:#x}{} ",
            truncate_start(&p.file, 40),
            p.line,
            truncate(p.function.as_deref().unwrap_or("??"), 40),
            stop.pc,
            stop.breakpoint
                .map(|b| format!(" · breakpoint #{b}"))
                .unwrap_or_default()
        ),
        None => format!(" pc {:#x} (no line information) ", stop.pc),
    };
    let title = format!("{}{}", hart_title(stop), title);
    let lines: Vec<Line> = if stop.source.is_empty() {
        vec![Line::from(Span::styled(
            "(source file not found on this machine)",
            Style::new().fg(Color::DarkGray),
        ))]
    } else {
        source_text(&stop.source, area.height)
    };
    f.render_widget(Paragraph::new(lines).block(body_block(title)), area);
}

/// ` hart 1/2 churn(7) ·` (the hart shown, how many there are, the process it runs; `idle`
/// when it runs none), `(stopped on hart 0)` when the user switched away from the hart that
/// stopped; empty when the target names no hart.
pub fn hart_title(stop: &StopView) -> String {
    let Some(h) = stop.hart else {
        return String::new();
    };
    let of = match stop.harts.len() {
        n if n > 1 => format!("/{n}"),
        _ => String::new(),
    };
    let on = stop.process.as_deref().unwrap_or("idle");
    let stopped = match stop.stopped_hart {
        Some(s) if s != h => format!(" (stopped on hart {s})"),
        _ => String::new(),
    };
    format!(" hart {h}{of} {on}{stopped} ·")
}

fn draw_args(f: &mut Frame, area: Rect, stop: &StopView) {
    let arg_line = |a: &crate::debugger::Arg| {
        Line::from(vec![
            Span::styled(format!("{} ", a.name), Style::new().fg(Color::Cyan)),
            Span::raw(format!("= {}", a.value)),
            Span::styled(
                format!("  {}", a.type_name),
                Style::new().fg(Color::DarkGray),
            ),
        ])
    };
    let mut lines: Vec<Line> = if stop.args.0.is_empty() {
        vec![Line::from(Span::styled(
            "(no arguments)",
            Style::new().fg(Color::DarkGray),
        ))]
    } else {
        stop.args.0.iter().map(arg_line).collect()
    };
    // Inlined calls the pc is in (innermost first), each with its own arguments.
    for (function, args) in &stop.inlined_args {
        lines.push(Line::from(Span::styled(
            format!("in {}:", truncate(function, 60)),
            Style::new().fg(Color::DarkGray),
        )));
        lines.extend(args.0.iter().map(arg_line));
    }
    f.render_widget(
        Paragraph::new(lines).block(body_block(" Arguments ".into())),
        area,
    );
}

fn draw_registers(f: &mut Frame, area: Rect, stop: &StopView) {
    let mut lines = Vec::new();
    let pairs: Vec<(String, u64)> = stop
        .registers
        .named_gprs()
        .skip(1) // zero
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    for chunk in pairs.chunks(2) {
        let spans: Vec<Span> = chunk
            .iter()
            .flat_map(|(n, v)| {
                [
                    Span::styled(format!("{n:>4} "), Style::new().fg(Color::Cyan)),
                    Span::raw(format!("{v:#018x}  ")),
                ]
            })
            .collect();
        lines.push(Line::from(spans));
    }
    f.render_widget(
        Paragraph::new(lines).block(body_block(" Registers ".into())),
        area,
    );
}

fn draw_backtrace(f: &mut Frame, area: Rect, stop: &StopView) {
    let lines: Vec<Line> = stop
        .backtrace
        .iter()
        .enumerate()
        .map(|(i, fr)| {
            let at = match &fr.file {
                Some(file) => format!("{}:{}", truncate_start(file, 32), fr.line),
                None => "??".into(),
            };
            Line::from(vec![
                Span::styled(format!("#{i:<2} "), Style::new().fg(Color::DarkGray)),
                Span::raw(format!(
                    "{}{} ",
                    if fr.inlined { "[inl] " } else { "" },
                    truncate(fr.function.as_deref().unwrap_or("??"), 48)
                )),
                Span::styled(at, Style::new().fg(Color::DarkGray)),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(body_block(" Backtrace ".into())),
        area,
    );
}

fn draw_changed(f: &mut Frame, area: Rect, stop: &StopView) {
    let row = |sign: &str, e: &crate::model::Entry| {
        format!(
            "{sign} slot {:<4} pid {:<3} pa {:#x} {:>3} pages {}",
            e.slot, e.owner, e.pa, e.npages, e.tag
        )
    };
    let lines: Vec<Line> = match &stop.changed {
        None => vec![Line::from(Span::styled(
            "(first stop: nothing to compare with yet)",
            Style::new().fg(Color::DarkGray),
        ))],
        Some(d) if d.added.is_empty() && d.removed.is_empty() => vec![Line::from(Span::styled(
            "(no tracker rows changed)",
            Style::new().fg(Color::DarkGray),
        ))],
        Some(d) => d
            .added
            .iter()
            .map(|e| Line::from(Span::styled(row("+", e), Style::new().fg(Color::Green))))
            .chain(
                d.removed
                    .iter()
                    .map(|e| Line::from(Span::styled(row("-", e), Style::new().fg(Color::Red)))),
            )
            .collect(),
    };
    f.render_widget(
        Paragraph::new(lines).block(body_block(
            " Tracker rows changed since the last stop ".into(),
        )),
        area,
    );
}
