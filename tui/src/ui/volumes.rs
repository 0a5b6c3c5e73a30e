//! The Volumes screen: every volume in the pool (LBA range, size, export, state, assigned host) and, in a second
//! pane, the partitions of the selected volume.

use super::{draw_table, pane_block, TableView};
use crate::app::{App, Pane};
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

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let block_size = |unit_index| app.pool.unit(unit_index).map_or(0, |u| u64::from(u.block_size));
    let size = |unit_index, blocks: u32| match block_size(unit_index) {
        0 => format!("{blocks} blk"),
        bs => HumanSize(u64::from(blocks) * bs).to_string(),
    };
    let volumes = app.visible_volumes();
    let rows = volumes
        .iter()
        .map(|v| {
            let unit = app.pool.unit(v.unit_index).map_or(format!("#{}", v.unit_index), |u| u.label());
            Row::new(vec![
                Cell::from(unit),
                Cell::from(v.index.to_string()),
                Cell::from(v.name.clone()),
                Cell::from(format!("{}-{}", v.start_lba, v.end_lba)),
                Cell::from(size(v.unit_index, v.length_blocks)),
                Cell::from(v.export.clone()),
                availability(v.available),
                // Host assignments come with allocation (a later station issue).
                Cell::from("-"),
            ])
        })
        .collect();
    let empty = if app.filter(Pane::Volumes).is_empty() {
        "No volumes in the pool.".to_string()
    } else {
        "No volume matches the filter (Esc clears it).".to_string()
    };
    draw_table(
        frame,
        app,
        top,
        TableView {
            pane: Pane::Volumes,
            block: pane_block(app, Pane::Volumes, "Volumes"),
            header: &["Unit", "#", "Name", "LBAs", "Size", "Export", "State", "Host"],
            widths: vec![
                Constraint::Length(8),
                Constraint::Length(3),
                Constraint::Length(9),
                Constraint::Length(15),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(11),
                Constraint::Min(4),
            ],
            rows,
            empty,
        },
    );

    let selected = volumes.get(app.selected(Pane::Volumes));
    let title = selected.map_or("Partitions".to_string(), |v| format!("Partitions of {}", v.name));
    let rows = app
        .visible_partitions()
        .into_iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(p.index.to_string()),
                Cell::from(format!("{}-{}", p.start_lba, p.end_lba)),
                Cell::from(size(p.unit_index, p.length_blocks)),
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
        bottom,
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
            rows,
            empty: empty.to_string(),
        },
    );
}
