//! The Volumes screen: every volume in the pool (LBA range on wide screens, size, export, state, the host it is
//! assigned to) and, in a second pane, the partitions of the selected volume.

use super::{column_width, draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::model::{AssignMode, Assignment, Volume};
use dvsan_layout::HumanSize;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::{Cell, Row};
use ratatui::Frame;

fn availability(available: bool) -> Cell<'static> {
    if available {
        Cell::from("available").style(Style::default().fg(Color::Green))
    } else {
        Cell::from("unavailable").style(Style::default().fg(Color::Red))
    }
}

/// From this width on, the volumes pane shows LBA ranges.
const LBAS_FROM: u16 = 96;
/// From this width on, the unit and name columns grow to fit.
const WIDE_FROM: u16 = 110;

/// The host a volume is assigned to, `(ro)` when read-only; `-` when free.
fn assigned_to(assignment: Option<&Assignment>) -> Cell<'static> {
    match assignment {
        Some(a) if a.mode == AssignMode::ReadOnly => Cell::from(format!("{} (ro)", a.host_text())),
        Some(a) => Cell::from(a.host_text()),
        None => Cell::from("-"),
    }
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let selected = draw_volumes(frame, app, top);
    draw_partitions(frame, app, bottom, selected);
}

/// `blocks` of unit `unit_index` in bytes, or in blocks while the unit's block size is unknown.
fn size(app: &App, unit_index: u32, blocks: u32) -> String {
    match app.pool().unit(unit_index).map_or(0, |u| u64::from(u.block_size)) {
        0 => format!("{blocks} blk"),
        bs => HumanSize(u64::from(blocks) * bs).to_string(),
    }
}

/// The volumes pane; returns the selected volume.
fn draw_volumes<'a>(frame: &mut Frame, app: &'a App, area: Rect) -> Option<&'a Volume> {
    // The host column needs the room on narrow screens; the partitions pane still shows LBAs there.
    let with_lbas = area.width >= LBAS_FROM;
    let volumes = app.visible_volumes();
    // Only the rows on screen are made (the pool may hold 40,000 volumes).
    let row = |at: usize| {
        let Some(v) = volumes.get(at) else { return Row::default() };
        let unit = app.pool().unit(v.unit_index).map_or(format!("#{}", v.unit_index), |u| u.label());
        let mut cells = vec![Cell::from(unit), Cell::from(v.index.to_string()), Cell::from(v.name.clone())];
        if with_lbas {
            cells.push(Cell::from(format!("{}-{}", v.start_lba, v.end_lba)));
        }
        cells.extend([
            Cell::from(size(app, v.unit_index, v.length_blocks)),
            Cell::from(v.export.clone()),
            availability(v.available),
            assigned_to(app.assignment_of(v.unit_index, v.index)),
        ]);
        Row::new(cells)
    };
    // Wide screens give long unit and volume names the room they need.
    let (unit_width, name_width) = if area.width >= WIDE_FROM {
        let units = volumes.iter().map(|v| app.pool().unit(v.unit_index).map_or(4, |u| u.label().len()));
        (column_width(units, 8, 16), column_width(volumes.iter().map(|v| v.name.len()), 9, 16))
    } else {
        (8, 9)
    };
    let (header, widths): (&'static [&'static str], Vec<Constraint>) = if with_lbas {
        (
            &["Unit", "#", "Name", "LBAs", "Size", "Export", "State", "Assigned to"],
            vec![
                Constraint::Length(unit_width),
                Constraint::Length(3),
                Constraint::Length(name_width),
                Constraint::Length(15),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(11),
                Constraint::Min(10),
            ],
        )
    } else {
        (
            &["Unit", "#", "Name", "Size", "Export", "State", "Assigned to"],
            vec![
                Constraint::Length(8),
                Constraint::Length(3),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(11),
                Constraint::Min(10),
            ],
        )
    };
    let empty = if app.filter(Pane::Volumes).is_empty() {
        "No volumes in the pool.".to_string()
    } else {
        "No volume matches the filter (Esc clears it).".to_string()
    };
    draw_table(
        frame,
        app,
        area,
        TableView {
            pane: Pane::Volumes,
            block: pane_block(app, Pane::Volumes, "Volumes"),
            header,
            widths,
            rows: Rows::Lazy { count: volumes.len(), row: Box::new(row) },
            empty,
        },
    );
    volumes.get(app.selected(Pane::Volumes)).copied()
}

/// The partitions pane: those of the selected volume.
fn draw_partitions(frame: &mut Frame, app: &App, area: Rect, selected: Option<&Volume>) {
    let title = selected.map_or("Partitions".to_string(), |v| format!("Partitions of {}", v.name));
    let rows = app
        .visible_partitions()
        .into_iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(p.index.to_string()),
                Cell::from(format!("{}-{}", p.start_lba, p.end_lba)),
                Cell::from(size(app, p.unit_index, p.length_blocks)),
                Cell::from(p.export.clone()),
                availability(p.available),
            ])
        })
        .collect();
    let empty = match selected {
        Some(_) => "The volume has no partitions.",
        None => "Select a volume to see its partitions.",
    };
    draw_table(
        frame,
        app,
        area,
        TableView {
            pane: Pane::Partitions,
            block: pane_block(app, Pane::Partitions, &title),
            header: &["#", "LBAs", "Size", "Export", "State"],
            widths: vec![
                Constraint::Length(3),
                Constraint::Length(15),
                Constraint::Length(9),
                Constraint::Length(16),
                Constraint::Min(11),
            ],
            rows: Rows::All(rows),
            empty: empty.to_string(),
        },
    );
}
