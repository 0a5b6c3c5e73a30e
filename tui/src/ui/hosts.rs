//! The Hosts screen: every host the station has assigned volumes to, and those volumes (unit, volume, name,
//! access mode, the mirrored volume a replica belongs to with its front's state, NBD URI), from
//! dvsanStationAssignmentTable (and dvsanStationReplicaTable and dvsanStationFrontTable). Rows are grouped by host: the host is named on its
//! first row only.

use super::{draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{short_age, AssignMode};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row};
use ratatui::Frame;

pub const EMPTY: &str = "No volume is assigned to a host. Assign one (a on the Volumes screen) or allocate \
    storage for a host (n); hosts reading and writing volumes show on the Activity screen (5).";

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let error = app.assignments_error.as_ref();
    let have_data = app.assignments_read_unix.is_some();
    let error_height = u16::from(error.is_some() && have_data);
    let [table_area, error_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(error_height)]).areas(area);
    let assignments = app.visible_assignments();
    // The Mirror column only when some assignment is a replica of a mirrored volume (narrow terminals keep the URI).
    let mirrored = assignments.iter().any(|a| !a.replica.is_empty());
    let mut previous_host = None;
    let rows = assignments
        .iter()
        .map(|a| {
            let host = if previous_host == Some(a.host) {
                Cell::from("")
            } else {
                Cell::from(a.host_text()).style(Style::default().add_modifier(Modifier::BOLD))
            };
            previous_host = Some(a.host);
            let unit = app.pool().unit(a.unit_index).map_or(format!("#{}", a.unit_index), |u| u.label());
            let mode = match a.mode {
                AssignMode::ReadOnly => Cell::from("ro").style(Style::default().fg(Color::Yellow)),
                AssignMode::ReadWrite => Cell::from("rw"),
                other => Cell::from(other.to_string()).style(Style::default().fg(Color::Red)),
            };
            let uri = if a.nbd_uri.is_empty() { "(not in the pool)".to_string() } else { a.nbd_uri.clone() };
            let mut cells = vec![
                host,
                Cell::from(unit),
                Cell::from(a.volume_index.to_string()),
                Cell::from(a.volume_name.clone()),
                mode,
            ];
            if mirrored {
                cells.push(Cell::from(if a.replica.is_empty() { "-".to_string() } else { a.replica.clone() }));
            }
            cells.push(Cell::from(uri));
            Row::new(cells)
        })
        .collect();
    let empty = match error {
        Some(error) if !have_data => format!("The station's assignments could not be read: {error}"),
        _ if !have_data => "Reading the station…".to_string(),
        _ if !app.filter(Pane::Hosts).is_empty() => "No assignment matches the filter (Esc clears it).".to_string(),
        _ => EMPTY.to_string(),
    };
    let hosts = {
        let mut hosts: Vec<_> = app.assignments.iter().map(|a| a.host).collect();
        hosts.sort();
        hosts.dedup();
        hosts.len()
    };
    let title = format!(
        "Hosts and assignments ({hosts} host{}, {} volume{})",
        if hosts == 1 { "" } else { "s" },
        app.assignments.len(),
        if app.assignments.len() == 1 { "" } else { "s" }
    );
    let view = TableView {
        pane: Pane::Hosts,
        block: pane_block(app, Pane::Hosts, &title),
        header: if mirrored {
            &["Host", "Unit", "Vol", "Name", "Mode", "Mirror", "NBD URI"]
        } else {
            &["Host", "Unit", "Vol", "Name", "Mode", "NBD URI"]
        },
        widths: [
            &[Constraint::Length(15), Constraint::Length(8), Constraint::Length(3), Constraint::Length(9)][..],
            &[Constraint::Length(4)],
            if mirrored { &[Constraint::Length(16)][..] } else { &[] },
            &[Constraint::Min(20)],
        ]
        .concat(),
        rows: Rows::All(rows),
        empty,
    };
    draw_table(frame, app, table_area, view);
    if let (Some(error), true) = (error, error_height > 0) {
        let age = app
            .assignments_read_unix
            .map_or(String::new(), |t| format!(" (list from {} ago)", short_age(app.now_unix - t)));
        let line = Line::styled(format!("assignments: {error}{age}"), Style::default().fg(Color::Red));
        frame.render_widget(Paragraph::new(line), error_area);
    }
}
