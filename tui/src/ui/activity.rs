//! The Activity screen: per unit, export and host, reads, writes and bytes per second, from the units' own
//! dvsanTrafficTable counters sampled at every refresh.

use super::{draw_table, pane_block, TableView};
use crate::app::{App, Pane};
use crate::model::{byte_rate, short_rate};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let errors = app.traffic_errors.len().min(3) as u16;
    let [table_area, error_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(errors)]).areas(area);
    let rows = app
        .visible_traffic()
        .into_iter()
        .map(|t| {
            let cells = match t.rates {
                Some(r) => {
                    vec![short_rate(r.reads), short_rate(r.writes), byte_rate(r.bytes_read), byte_rate(r.bytes_written)]
                }
                None => vec!["…".to_string(); 4],
            };
            let mut row =
                vec![Cell::from(t.unit_label.clone()), Cell::from(t.export.clone()), Cell::from(t.host.clone())];
            row.extend(cells.into_iter().map(Cell::from));
            Row::new(row)
        })
        .collect();
    let empty = if app.filter(Pane::Activity).is_empty() {
        "No traffic: no host has opened an export on an available unit yet."
    } else {
        "No traffic matches the filter (Esc clears it)."
    };
    let view = TableView {
        pane: Pane::Activity,
        block: pane_block(app, Pane::Activity, "Activity (per second)"),
        header: &["Unit", "Export", "Host", "Reads", "Writes", "Read", "Written"],
        widths: vec![
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(15),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(12),
            Constraint::Min(12),
        ],
        rows,
        empty: empty.to_string(),
    };
    draw_table(frame, app, table_area, view);
    let lines: Vec<Line> = app
        .traffic_errors
        .iter()
        .take(3)
        .map(|e| Line::styled(format!("no traffic from {e}"), Style::default().fg(Color::Red)))
        .collect();
    frame.render_widget(Paragraph::new(lines), error_area);
}
