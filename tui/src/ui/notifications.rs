//! The Notifications screen: a live tail of the station's notification log, newest last, filtered by unit and
//! type with `/unit:NAME type:NAME`; Enter shows the selected notification with every varbind on its own line.

use super::{draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{Notification, TailStatus};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Wrap};
use ratatui::Frame;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    // The unit the notification names, else the unit whose agent sent it (notifications read over SNMP carry
    // no station-side unit id), else its source address.
    let unit_label = |n: &Notification| -> String {
        if let Some(id) = n.unit_id.as_deref() {
            return app
                .pool()
                .units
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| id.chars().take(8).collect(), |u| u.label());
        }
        let source_ip = n.source.rsplit_once(':').map_or(n.source.as_str(), |(ip, _)| ip);
        let by_address = app.pool().units.iter().find(|u| u.agent.is_some_and(|a| a.ip().to_string() == source_ip));
        by_address.map_or_else(|| source_ip.to_string(), |u| u.label())
    };
    let rows = app
        .visible_notifications()
        .into_iter()
        .map(|n| {
            // HH:MM:SS of the RFC 3339 time; the date is rarely what one looks for in a tail.
            let time = n.time.get(11..19).unwrap_or(&n.time).to_string();
            Row::new(vec![
                Cell::from(time),
                Cell::from(unit_label(n)),
                Cell::from(n.type_name.clone()),
                Cell::from(n.details.clone()),
            ])
        })
        .collect();
    let empty = match &app.tail {
        TailStatus::Starting => "Reading the station's notification log…".to_string(),
        TailStatus::Stopped(why) => format!("The notification tail stopped: {why}"),
        TailStatus::Following if !app.filter(Pane::Notifications).is_empty() => {
            "No notification matches the filter (Esc clears it).".to_string()
        }
        TailStatus::Following => "No notifications yet; following the station's log.".to_string(),
    };
    let title = match &app.tail {
        TailStatus::Following if app.follow => "Notifications (following)",
        TailStatus::Following => "Notifications (paused: G follows)",
        _ => "Notifications",
    };
    let view = TableView {
        pane: Pane::Notifications,
        block: pane_block(app, Pane::Notifications, title),
        header: &["Time", "Unit", "Type", "Details"],
        widths: vec![Constraint::Length(8), Constraint::Length(9), Constraint::Length(19), Constraint::Min(10)],
        rows: Rows::All(rows),
        empty,
    };
    draw_table(frame, app, area, view);
}

/// The varbinds of a notification's details (`name=value` separated by spaces; values may hold spaces, so a new
/// varbind starts only at a word that reads `name=`).
pub fn varbinds(details: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in details.split(' ') {
        let starts_varbind = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        });
        match out.last_mut() {
            Some(last) if !starts_varbind => {
                last.push(' ');
                last.push_str(word);
            }
            _ => out.push(word.to_string()),
        }
    }
    out.retain(|v| !v.is_empty());
    out
}

/// The notification `id` in full, over the list.
pub fn draw_detail(frame: &mut Frame, app: &App, id: i64) {
    let Some(n) = app.notifications.iter().find(|n| n.id == id) else { return };
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut lines = vec![
        Line::from(vec![Span::styled(n.type_name.clone(), bold), Span::raw(format!("  #{}", n.id))]),
        Line::from(format!("time:   {}", n.time)),
        Line::from(format!("source: {}", n.source)),
    ];
    if let Some(unit) = &n.unit_id {
        let name =
            app.pool().units.iter().find(|u| &u.id == unit).map_or(String::new(), |u| format!(" ({})", u.label()));
        lines.push(Line::from(format!("unit:   {unit}{name}")));
    }
    lines.push(Line::styled("varbinds:", bold));
    lines.extend(varbinds(&n.details).into_iter().map(|v| Line::from(format!("  {v}"))));
    let area = super::centered(frame.area(), 78, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    let block = Block::default().borders(Borders::ALL).title(" Notification (Esc closes, ↑/↓ previous/next) ");
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}
