//! The Pending screen: units that announced themselves to the station without being trusted
//! (dvsanStationPendingTable), with what each claims: the unit id and name, its address, the sysName and sysDescr
//! its agent gave, when the station first and last heard from it and how many notifications it sent. Those
//! waiting come first, rejected ones after. Below the table, the selected unit in full. `A` approves it (task
//! approveUnit: the station trusts its address and reads it into the pool), `X` rejects it (task rejectUnit); both
//! ask first.

use super::{column_width, draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{short_age, PendingState, PendingUnit};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Wrap};
use ratatui::Frame;

pub const EMPTY: &str = "No unit waits for approval. A unit the station does not trust (not enrolled, not added \
    with `dvsan-station unit add`) shows here when it announces itself; A approves it, X rejects it.";

fn state_style(state: PendingState) -> Style {
    match state {
        PendingState::Pending => Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        PendingState::Rejected => Style::default().fg(Color::DarkGray),
        PendingState::Unknown(_) => Style::default().fg(Color::Red),
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

fn age(app: &App, at: Option<i64>) -> String {
    at.map_or("-".to_string(), |t| short_age(app.now_unix - t))
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let details_height = match area.height {
        18.. => 8,
        12.. => 4,
        _ => 0,
    };
    let error = app.pending_error.as_ref().filter(|_| app.pending_read_unix.is_some());
    let error_height = u16::from(error.is_some());
    let [table_area, error_area, details_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(error_height), Constraint::Length(details_height)])
            .areas(area);
    let pending = app.visible_pending();
    // As wide as the longest address (IPv6 ones are cut; the details show them whole).
    let address_width = column_width(pending.iter().map(|p| p.address_text().chars().count()), 9, 23);
    let rows: Vec<Row<'static>> = pending
        .iter()
        .map(|p| {
            let id: String = p.unit_id.chars().take(8).collect();
            Row::new(vec![
                Cell::from(p.index.to_string()),
                Cell::from(p.address_text()),
                Cell::from(or_dash(&id)),
                Cell::from(or_dash(&p.name)),
                Cell::from(p.state.to_string()).style(state_style(p.state)),
                Cell::from(age(app, p.first_seen_unix)),
                Cell::from(age(app, p.last_seen_unix)),
                Cell::from(p.notifications.to_string()),
                Cell::from(or_dash(&p.sys_descr)),
            ])
        })
        .collect();
    let empty = match (&app.pending_error, app.pending_read_unix) {
        (Some(error), None) => format!("The station's pending units could not be read: {error}"),
        (None, None) => "Reading the station…".to_string(),
        _ if !app.filter(Pane::Pending).is_empty() => "No pending unit matches the filter (Esc clears it).".to_string(),
        _ => EMPTY.to_string(),
    };
    let waiting = app.waiting_count();
    let title = format!(
        "Pending units ({waiting} waiting for approval, {} rejected)",
        app.pending.iter().filter(|p| p.state == PendingState::Rejected).count()
    );
    let view = TableView {
        pane: Pane::Pending,
        block: pane_block(app, Pane::Pending, &title),
        header: &["#", "Address", "Claims", "Name", "State", "First", "Last", "Notif", "sysDescr"],
        widths: vec![
            Constraint::Length(3),
            Constraint::Length(address_width),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
        rows: Rows::All(rows),
        empty,
    };
    draw_table(frame, app, table_area, view);
    if let Some(error) = error {
        let age = app
            .pending_read_unix
            .map_or(String::new(), |t| format!(" (list from {} ago)", short_age(app.now_unix - t)));
        let line = Line::styled(format!("pending units: {error}{age}"), Style::default().fg(Color::Red));
        frame.render_widget(Paragraph::new(line), error_area);
    }
    if details_height > 0 {
        let selected = pending.get(app.selected(Pane::Pending)).copied();
        draw_details(frame, app, selected, details_area);
    }
}

/// The selected pending unit in full, and what approving it means.
fn draw_details(frame: &mut Frame, app: &App, unit: Option<&PendingUnit>, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" Selected ");
    let Some(p) = unit else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let label = |text: &str| Span::styled(format!("{text}: "), Style::default().fg(Color::DarkGray));
    let lines = vec![
        Line::from(vec![
            label("Claims unit id"),
            Span::raw(or_dash(&p.unit_id)),
            Span::raw("  "),
            label("name"),
            Span::raw(or_dash(&p.name)),
        ]),
        Line::from(vec![
            label("At"),
            Span::raw(p.address_text()),
            Span::raw("  "),
            label("sysName"),
            Span::raw(or_dash(&p.sys_name)),
            Span::raw("  "),
            label("seen"),
            Span::raw(format!(
                "first {} ago, last {} ago, {} notification(s)",
                age(app, p.first_seen_unix),
                age(app, p.last_seen_unix),
                p.notifications
            )),
        ]),
        Line::from(vec![label("sysDescr"), Span::raw(or_dash(&p.sys_descr))]),
        Line::from(Span::styled(
            match p.state {
                PendingState::Rejected => "Rejected: it stays out of the pool. A approves it after all.",
                _ => "A approves it: the station trusts this address and reads the unit into the pool. X rejects it.",
            },
            Style::default().fg(Color::DarkGray),
        )),
    ];
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: true }), area);
}
