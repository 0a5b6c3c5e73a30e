//! The Notifications screen: a live tail of the station's notification log, newest last, filtered by unit and
//! type with `/unit:NAME type:NAME`.

use super::{draw_table, pane_block, TableView};
use crate::app::{App, Pane};
use crate::model::{Notification, TailStatus};
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Row};
use ratatui::Frame;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    // The unit the notification names, else the unit whose agent sent it (notifications read over SNMP carry
    // no station-side unit id), else its source address.
    let unit_label = |n: &Notification| -> String {
        if let Some(id) = n.unit_id.as_deref() {
            return app
                .pool
                .units
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| id.chars().take(8).collect(), |u| u.label());
        }
        let source_ip = n.source.rsplit_once(':').map_or(n.source.as_str(), |(ip, _)| ip);
        let by_address = app.pool.units.iter().find(|u| u.agent.is_some_and(|a| a.ip().to_string() == source_ip));
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
        rows,
        empty,
    };
    draw_table(frame, app, area, view);
}
