//! The Tasks screen: the station's tasks (from every console and manager, it is one table on the station), newest
//! first, with state, progress (a gauge while running) and the step or result; below the table, the selected task
//! in full: its progress, and the steps this console saw it go through with when it first saw each (the station
//! reports the current step, and when the task was created and ended; not when each step began). `c` cancels a
//! pending task, `x` removes an ended one.

use super::{draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{short_age, Reported, Task, TaskState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Gauge, Paragraph, Row, Wrap};
use ratatui::Frame;

/// From this width on, the table has an Owner column (narrower screens show the owner in the details).
const OWNER_COLUMN_FROM: u16 = 110;

pub fn state_style(state: Reported<TaskState>) -> Style {
    match state {
        Reported::Known(TaskState::Pending) => Style::default().fg(Color::Yellow),
        Reported::Known(TaskState::Running) => Style::default().fg(Color::Cyan),
        Reported::Known(TaskState::Done) => Style::default().fg(Color::Green),
        Reported::Known(TaskState::Failed) | Reported::Unknown(_) => Style::default().fg(Color::Red),
        Reported::Known(TaskState::Cancelled) => Style::default().fg(Color::DarkGray),
    }
}

/// The progress column's text: empty while running (a gauge is drawn there); the percentage once it moved, else `-`.
pub fn progress_text(task: &Task) -> String {
    match task.state {
        Reported::Known(TaskState::Running) => String::new(),
        _ if task.progress == 0 => "-".to_string(),
        _ => format!("{}%", task.progress),
    }
}

/// The progress column.
const PROGRESS_COLUMN: usize = 3;

/// A task's progress as a gauge, the percentage in it.
pub fn progress_gauge(task: &Task) -> Gauge<'static> {
    Gauge::default()
        .percent(task.progress.min(100) as u16)
        .gauge_style(Style::default().fg(Color::Cyan).bg(Color::DarkGray))
        .use_unicode(true)
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let details_height = match area.height {
        18.. => 8,
        14.. => 4,
        _ => 0,
    };
    let error = app.tasks_error.as_ref().filter(|_| app.tasks_read_unix.is_some());
    let error_height = u16::from(error.is_some());
    let [table_area, error_area, details_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(error_height), Constraint::Length(details_height)])
            .areas(area);
    let with_owner = area.width >= OWNER_COLUMN_FROM;
    let tasks = app.visible_tasks();
    let rows = tasks
        .iter()
        .map(|t| {
            let age = t.created_unix.map_or("-".to_string(), |c| short_age(app.now_unix - c));
            let mut cells = vec![
                Cell::from(t.index.to_string()),
                Cell::from(t.summary()),
                Cell::from(t.state.to_string()).style(state_style(t.state)),
                Cell::from(progress_text(t)),
                Cell::from(t.step_or_result().to_string()),
            ];
            if with_owner {
                cells.push(Cell::from(t.owner.clone()));
            }
            cells.push(Cell::from(age));
            Row::new(cells)
        })
        .collect();
    let empty = match (&app.tasks_error, app.tasks_read_unix) {
        (Some(error), None) => format!("The station's tasks could not be read: {error}"),
        (None, None) => "Reading the station's tasks…".to_string(),
        _ if !app.filter(Pane::Tasks).is_empty() => "No task matches the filter (Esc clears it).".to_string(),
        _ => "No tasks on the station. Start one from the Units, Volumes or Hosts screen (a, c, p, d, r, u, n; \
              ? lists them)."
            .to_string(),
    };
    let (header, widths): (&'static [&'static str], Vec<Constraint>) = if with_owner {
        (
            &["Id", "Operation", "State", "Progress", "Step / result", "Owner", "Age"],
            vec![
                Constraint::Length(4),
                Constraint::Length(32),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Min(20),
                Constraint::Length(16),
                Constraint::Length(4),
            ],
        )
    } else {
        (
            &["Id", "Operation", "State", "Progress", "Step / result", "Age"],
            vec![
                Constraint::Length(4),
                Constraint::Length(26),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Min(10),
                Constraint::Length(4),
            ],
        )
    };
    let title = match app.followed_tasks().len() {
        0 => "Tasks (newest first)".to_string(),
        n => format!("Tasks (newest first; {n} from this console in progress)"),
    };
    let view = TableView {
        pane: Pane::Tasks,
        block: pane_block(app, Pane::Tasks, &title),
        header,
        widths,
        rows: Rows::All(rows),
        empty,
    };
    let geometry = draw_table(frame, app, table_area, view);
    for (index, row) in &geometry.rows {
        let (Some(task), Some(cell)) = (tasks.get(*index), geometry.cell(*row, PROGRESS_COLUMN)) else { continue };
        if task.state == TaskState::Running {
            frame.render_widget(progress_gauge(task), cell);
        }
    }
    if let Some(error) = error {
        let age =
            app.tasks_read_unix.map_or(String::new(), |t| format!(" (list from {} ago)", short_age(app.now_unix - t)));
        let line = Line::styled(format!("tasks: {error}{age}"), Style::default().fg(Color::Red));
        frame.render_widget(Paragraph::new(line), error_area);
    }
    if details_height > 0 {
        draw_details(frame, app, tasks.get(app.selected(Pane::Tasks)).copied(), details_area);
    }
}

/// The selected task in full: everything the row cuts short.
fn draw_details(frame: &mut Frame, app: &App, task: Option<&Task>, area: Rect) {
    let block = Block::default().borders(Borders::TOP).title(" Selected task ");
    let Some(task) = task else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let when = |t: Option<i64>| t.map_or("-".to_string(), |t| format!("{} ago", short_age(app.now_unix - t)));
    let owner = if task.owner.is_empty() { "unknown" } else { task.owner.as_str() };
    let mut first = vec![
        Span::styled(format!("#{} ", task.index), bold),
        Span::raw(task.summary()),
        Span::raw(" · "),
        Span::styled(task.state.to_string(), state_style(task.state)),
        Span::raw(format!(" · by {owner} · created {}", when(task.created_unix))),
    ];
    if task.finished_unix.is_some() {
        first.push(Span::raw(format!(" · ended {}", when(task.finished_unix))));
    }
    let (label, text) = if task.state.is_ended() { ("Result: ", &task.result) } else { ("Step: ", &task.step) };
    let mut lines = vec![Line::from(first), Line::from(vec![Span::styled(label, bold), Span::raw(text.clone())])];
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let steps = app.steps.steps(task.index);
    let show_steps = inner.height >= 5 && !steps.is_empty();
    let show_gauge = inner.height >= 4 && !task.state.is_ended();
    if show_steps {
        lines.push(Line::styled(
            "Steps seen by this console (the station tells only the current one):",
            Style::default().fg(Color::DarkGray),
        ));
        // The newest steps when they do not all fit.
        let room = usize::from(inner.height).saturating_sub(lines.len() + usize::from(show_gauge));
        for (i, step) in steps.iter().enumerate().skip(steps.len().saturating_sub(room)) {
            let lasted = steps
                .get(i + 1)
                .map_or(String::new(), |next| format!(" (for {})", short_age(next.seen_unix - step.seen_unix)));
            let when = format!("{} ago", short_age(app.now_unix - step.seen_unix));
            lines.push(Line::from(format!("  {when:>8}  {}{lasted}", step.step)));
        }
    }
    let [text_area, gauge_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(u16::from(show_gauge))]).areas(inner);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), text_area);
    if show_gauge {
        let [label_area, bar] = Layout::horizontal([Constraint::Length(10), Constraint::Fill(1)]).areas(gauge_area);
        frame.render_widget(Paragraph::new(Span::styled("Progress: ", bold)), label_area);
        frame.render_widget(progress_gauge(task), bar);
    }
}
