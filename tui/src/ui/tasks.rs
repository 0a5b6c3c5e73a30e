//! The Tasks screen: operations running on the station. The station has no task interface yet, so the screen
//! says so; forms validate and confirm, then report that nothing was sent.

use super::{draw_table, pane_block, TableView};
use crate::app::{App, Pane, TASKS_UNAVAILABLE};
use ratatui::layout::{Constraint, Rect};
use ratatui::Frame;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let view = TableView {
        pane: Pane::Tasks,
        block: pane_block(app, Pane::Tasks, "Tasks"),
        header: &["Id", "Operation", "State", "Progress", "Result"],
        widths: vec![Constraint::Length(16); 5],
        rows: Vec::new(),
        empty: format!(
            "No tasks: {TASKS_UNAVAILABLE}. Operations started from the console (a, c, d) are checked and \
             confirmed, then reported as not sent."
        ),
    };
    draw_table(frame, app, area, view);
}
