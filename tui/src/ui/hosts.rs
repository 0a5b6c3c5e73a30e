//! The Hosts screen: hosts and the volumes assigned to them. The station does not allocate volumes to hosts
//! yet, so this screen says so instead of showing an empty table that looks like "no hosts".

use super::{draw_table, pane_block, TableView};
use crate::app::{App, Pane};
use ratatui::layout::{Constraint, Rect};
use ratatui::Frame;

pub const EMPTY: &str = "No host assignments: the station does not allocate volumes to hosts yet. \
    Hosts reading and writing volumes show on the Activity screen (5).";

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let view = TableView {
        pane: Pane::Hosts,
        block: pane_block(app, Pane::Hosts, "Hosts and assignments"),
        header: &["Host", "Volume", "Unit", "Export", "Since"],
        widths: vec![Constraint::Length(16); 5],
        rows: Vec::new(),
        empty: EMPTY.to_string(),
    };
    draw_table(frame, app, area, view);
}
