//! The Units screen: at the top, the pool as gauges (used and assigned of the whole capacity) with the units
//! counted by state; below, every unit the station knows, with state, agent address, capacity, a used/free bar,
//! free space and when it was last heard from. Enter opens a unit's map and details ([`super::map`]).

use super::{column_width, draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{short_age, Unit, UnitState};
use dvsan_layout::HumanSize;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row};
use ratatui::Frame;

pub fn state_style(state: UnitState) -> Style {
    match state {
        UnitState::Available => Style::default().fg(Color::Green),
        UnitState::Unavailable => Style::default().fg(Color::Yellow),
        UnitState::Unreachable | UnitState::Error | UnitState::Unknown(_) => Style::default().fg(Color::Red),
    }
}

/// From this width on, the name and agent columns grow to fit and a Vols column shows (80-column screens keep the
/// compact layout; the map has the volumes).
const WIDE_FROM: u16 = 100;
/// The column of the used/free bar.
const USED_COLUMN: usize = 4;

/// The used share of a unit, 0..=1 (0 when its size is not known).
pub fn used_ratio(unit: &Unit) -> f64 {
    if unit.capacity_blocks == 0 {
        return 0.0;
    }
    let used = unit.capacity_blocks.saturating_sub(unit.free_blocks);
    (f64::from(used) / f64::from(unit.capacity_blocks)).clamp(0.0, 1.0)
}

/// A used/free bar: filled for the used part, the percentage in the middle.
pub fn usage_gauge(ratio: f64, label: String) -> Gauge<'static> {
    let color = if ratio >= 0.9 { Color::Red } else { Color::Green };
    Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(Span::styled(label, Style::default().add_modifier(Modifier::BOLD)))
        .gauge_style(Style::default().fg(color).bg(Color::DarkGray))
        .use_unicode(true)
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let pool_height = if area.height >= 10 { 4 } else { 0 };
    let [pool_area, table_area] = Layout::vertical([Constraint::Length(pool_height), Constraint::Min(3)]).areas(area);
    if pool_height > 0 {
        draw_pool(frame, app, pool_area);
    }
    draw_units(frame, app, table_area);
}

/// The pool's capacity, used, assigned and free space, and the units by state.
fn draw_pool(frame: &mut Frame, app: &App, area: Rect) {
    let units = &app.pool().units;
    let bytes = |blocks: u32, unit: &Unit| u64::from(blocks) * u64::from(unit.block_size);
    let capacity: u64 = units.iter().map(|u| bytes(u.capacity_blocks, u)).sum();
    let free: u64 = units.iter().map(|u| bytes(u.free_blocks, u)).sum();
    let used = capacity.saturating_sub(free);
    let assigned: u64 = app
        .pool()
        .volumes
        .iter()
        .filter(|v| app.assignment_of(v.unit_index, v.index).is_some())
        .filter_map(|v| app.pool().unit(v.unit_index).map(|u| bytes(v.length_blocks, u)))
        .sum();
    let ratio = |part: u64| if capacity == 0 { 0.0 } else { part as f64 / capacity as f64 };
    let block = Block::default().borders(Borders::ALL).title(format!(" Pool: {} ", HumanSize(capacity)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [gauges, counts] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(inner);
    let [used_label, used_bar, assigned_label, assigned_bar] =
        Layout::horizontal([Constraint::Length(5), Constraint::Fill(1), Constraint::Length(11), Constraint::Fill(1)])
            .areas(gauges);
    let percent = |part: u64| format!("{:.0}%", ratio(part) * 100.0);
    frame.render_widget(Paragraph::new("used"), used_label);
    frame.render_widget(usage_gauge(ratio(used), format!("{} {}", HumanSize(used), percent(used))), used_bar);
    frame.render_widget(Paragraph::new("  assigned "), assigned_label);
    let assigned_gauge = usage_gauge(ratio(assigned), format!("{} {}", HumanSize(assigned), percent(assigned)))
        .gauge_style(Style::default().fg(Color::Cyan).bg(Color::DarkGray));
    frame.render_widget(assigned_gauge, assigned_bar);
    let count = |state: UnitState| units.iter().filter(|u| u.state == state).count();
    let others =
        units.len() - count(UnitState::Available) - count(UnitState::Unavailable) - count(UnitState::Unreachable);
    let mut spans = vec![
        Span::raw(format!("free {} · units: ", HumanSize(capacity.saturating_sub(used)))),
        Span::styled(format!("{} available", count(UnitState::Available)), state_style(UnitState::Available)),
        Span::raw(" · "),
        Span::styled(format!("{} unavailable", count(UnitState::Unavailable)), state_style(UnitState::Unavailable)),
        Span::raw(" · "),
        Span::styled(format!("{} unreachable", count(UnitState::Unreachable)), state_style(UnitState::Unreachable)),
    ];
    if others > 0 {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(format!("{others} in error"), state_style(UnitState::Error)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), counts);
}

/// The units table. Only the rows on screen are made: at 10,000 units a key press draws 30 rows, not 10,000.
fn draw_units(frame: &mut Frame, app: &App, area: Rect) {
    let wide = area.width >= WIDE_FROM;
    let row = move |index: usize| {
        let Some(u) = app.visible_unit(index) else { return Row::default() };
        let seen = u.last_seen_unix.map_or("never".to_string(), |t| format!("{} ago", short_age(app.now_unix - t)));
        let (capacity, free) = if u.block_size == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (HumanSize(u.capacity_bytes()).to_string(), HumanSize(u.free_bytes()).to_string())
        };
        let mut cells = vec![
            Cell::from(u.label()),
            Cell::from(u.state.to_string()).style(state_style(u.state)),
            Cell::from(u.agent_short()),
            Cell::from(capacity),
            // The bar is drawn over this cell.
            Cell::from(""),
            Cell::from(free),
        ];
        if wide {
            cells.push(Cell::from(u.volumes.to_string()));
        }
        cells.extend([Cell::from(seen), Cell::from(u.reason.clone())]);
        Row::new(cells)
    };
    let rows = Rows::Lazy { count: app.visible_units().len(), row: Box::new(row) };
    let empty = if app.pool_read_unix.is_none() {
        "Reading the station…".to_string()
    } else if app.filter(Pane::Units).is_empty() {
        "The station knows no units yet. Units join when they send a notification to the station, or with \
         `dvsan-station unit add`."
            .to_string()
    } else {
        "No unit matches the filter (Esc clears it).".to_string()
    };
    let (header, widths): (&'static [&'static str], Vec<Constraint>) = if wide {
        (
            &["Unit", "State", "Agent", "Capacity", "Used", "Free", "Vols", "Seen", "Reason"],
            vec![
                Constraint::Length(column_width(std::iter::once(app.longest_visible_unit_label()), 8, 16)),
                Constraint::Length(11),
                Constraint::Length(21),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Length(8),
                Constraint::Length(4),
                Constraint::Length(8),
                Constraint::Min(4),
            ],
        )
    } else {
        (
            &["Unit", "State", "Agent", "Capacity", "Used", "Free", "Seen", "Reason"],
            vec![
                Constraint::Length(8),
                Constraint::Length(11),
                // IPv4 address and a five-digit port.
                Constraint::Length(15),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Min(4),
            ],
        )
    };
    let view =
        TableView { pane: Pane::Units, block: pane_block(app, Pane::Units, "Units"), header, widths, rows, empty };
    let geometry = draw_table(frame, app, area, view);
    for (index, row) in &geometry.rows {
        let (Some(unit), Some(cell)) = (app.visible_unit(*index), geometry.cell(*row, USED_COLUMN)) else { continue };
        if unit.capacity_blocks > 0 {
            let ratio = used_ratio(unit);
            frame.render_widget(usage_gauge(ratio, format!("{:.0}%", ratio * 100.0)), cell);
        }
    }
}
