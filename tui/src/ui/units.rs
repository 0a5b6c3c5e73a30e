//! The Units screen: every unit the station knows, with state, agent address, capacity, free space and when it
//! was last heard from.

use super::{column_width, draw_table, pane_block, TableView};
use crate::app::{App, Pane};
use crate::model::{short_age, UnitState};
use dvsan_layout::HumanSize;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Cell, Row};
use ratatui::Frame;

pub fn state_style(state: UnitState) -> Style {
    match state {
        UnitState::Available => Style::default().fg(Color::Green),
        UnitState::Unavailable => Style::default().fg(Color::Yellow),
        UnitState::Unreachable | UnitState::Error | UnitState::Unknown(_) => Style::default().fg(Color::Red),
    }
}

/// From this width on, the name and agent columns grow to fit (80-column screens keep the compact layout).
const WIDE_FROM: u16 = 100;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let wide = area.width >= WIDE_FROM;
    let labels: Vec<String> = app.visible_units().iter().map(|u| u.label()).collect();
    let rows = app
        .visible_units()
        .into_iter()
        .map(|u| {
            let seen = u.last_seen_unix.map_or("never".to_string(), |t| format!("{} ago", short_age(app.now_unix - t)));
            let (capacity, free) = if u.block_size == 0 {
                ("-".to_string(), "-".to_string())
            } else {
                (HumanSize(u.capacity_bytes()).to_string(), HumanSize(u.free_bytes()).to_string())
            };
            Row::new(vec![
                Cell::from(u.label()),
                Cell::from(u.state.to_string()).style(state_style(u.state)),
                Cell::from(u.agent.map_or("-".to_string(), |a| a.to_string())),
                Cell::from(capacity),
                Cell::from(free),
                Cell::from(u.volumes.to_string()),
                Cell::from(seen),
                Cell::from(u.reason.clone()),
            ])
        })
        .collect();
    let empty = if app.pool_read_unix.is_none() {
        "Reading the station…".to_string()
    } else if app.filter(Pane::Units).is_empty() {
        "The station knows no units yet. Units join when they send a notification to the station, or with \
         `dvsan-station unit add`."
            .to_string()
    } else {
        "No unit matches the filter (Esc clears it).".to_string()
    };
    let view = TableView {
        pane: Pane::Units,
        block: pane_block(app, Pane::Units, "Units"),
        header: &["Unit", "State", "Agent", "Capacity", "Free", "Vols", "Seen", "Reason"],
        widths: vec![
            Constraint::Length(if wide { column_width(labels.iter().map(String::len), 8, 16) } else { 8 }),
            Constraint::Length(11),
            // IPv4 address and a five-digit port.
            Constraint::Length(if wide { 21 } else { 15 }),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Min(4),
        ],
        rows,
        empty,
    };
    draw_table(frame, app, area, view);
}
