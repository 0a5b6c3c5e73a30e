//! A unit's address-space map and details (Enter on a unit, `m` on a volume): the unit in full (state, reason,
//! id, agent, size), then its blocks from LBA 0 to the end as one band per medium, volumes and partitions as
//! labelled extents, free extents shown as such and the largest free extent marked, the selected volume
//! highlighted; `b` adds the LBA of every boundary. Media come from the unit's own dvsanMediaTable (the station's
//! MIB does not carry them); without them the unit is one band.
//!
//! Extents are laid out in proportion to their length; every extent gets at least one column while there are
//! columns to give, so small ones stay visible (the LBA list with `b` has them all).

use super::units::state_style;
use crate::app::{App, MapView};
use crate::model::{short_age, Medium, Unit};
use dvsan_layout::HumanSize;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

/// What an extent of the map is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentKind {
    /// Part of a volume outside its partitions.
    Volume,
    Partition,
    Free {
        /// The largest free extent of the unit (the first of equals).
        largest: bool,
    },
}

/// A run of LBAs of one kind, `start..=end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub kind: ExtentKind,
    /// `vol1`, `db1/p2`, `free`.
    pub label: String,
    /// The volume the extent belongs to.
    pub volume: Option<u32>,
}

impl Extent {
    pub fn blocks(&self) -> u64 {
        self.end - self.start + 1
    }
}

/// The unit's address space, from LBA 0 to `blocks - 1`, as extents in order.
pub fn unit_extents(app: &App, unit: u32, blocks: u64) -> Vec<Extent> {
    let mut extents = Vec::new();
    let mut next = 0u64;
    let free = |start: u64, end: u64| Extent {
        start,
        end,
        kind: ExtentKind::Free { largest: false },
        label: "free".into(),
        volume: None,
    };
    for volume in app.unit_volumes(unit) {
        let (start, end) = (u64::from(volume.start_lba), u64::from(volume.end_lba));
        if end < start || start < next {
            continue; // Malformed or overlapping rows are not drawn.
        }
        if start > next {
            extents.push(free(next, start - 1));
        }
        let piece =
            |start: u64, end: u64, kind, label: String| Extent { start, end, kind, label, volume: Some(volume.index) };
        let mut partitions: Vec<_> =
            app.pool().partitions.iter().filter(|p| (p.unit_index, p.volume_index) == (unit, volume.index)).collect();
        partitions.sort_by_key(|p| p.start_lba);
        let mut inside = start;
        for p in partitions {
            let (p_start, p_end) = (u64::from(p.start_lba), u64::from(p.end_lba));
            if p_start < inside || p_end > end || p_end < p_start {
                continue;
            }
            if p_start > inside {
                extents.push(piece(inside, p_start - 1, ExtentKind::Volume, volume.name.clone()));
            }
            extents.push(piece(p_start, p_end, ExtentKind::Partition, format!("{}/p{}", volume.name, p.index)));
            inside = p_end + 1;
        }
        if inside <= end {
            extents.push(piece(inside, end, ExtentKind::Volume, volume.name.clone()));
        }
        next = end + 1;
    }
    if next < blocks {
        extents.push(free(next, blocks - 1));
    }
    let largest = extents
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, ExtentKind::Free { .. }))
        .max_by(|(ia, a), (ib, b)| a.blocks().cmp(&b.blocks()).then(ib.cmp(ia)))
        .map(|(i, _)| i);
    if let Some(i) = largest {
        extents[i].kind = ExtentKind::Free { largest: true };
        extents[i].label = "largest free".into();
    }
    extents
}

/// The extents within `first..=last`, cut at the ends.
pub fn clip(extents: &[Extent], first: u64, last: u64) -> Vec<Extent> {
    extents
        .iter()
        .filter(|e| e.end >= first && e.start <= last)
        .map(|e| Extent { start: e.start.max(first), end: e.end.min(last), ..e.clone() })
        .collect()
}

/// Columns for extents of these lengths in `width` columns: in proportion, at least one each while columns last.
pub fn proportional_widths(lengths: &[u64], width: u16) -> Vec<u16> {
    let total: u64 = lengths.iter().sum();
    if total == 0 || lengths.is_empty() {
        return vec![0; lengths.len()];
    }
    // Proportional boundaries, so rounding never adds up past the width.
    let mut cumulative = 0u64;
    let mut previous = 0u16;
    let mut widths: Vec<u16> = lengths
        .iter()
        .map(|len| {
            cumulative += len;
            let edge = (u128::from(cumulative) * u128::from(width) / u128::from(total)) as u16;
            let w = edge - previous;
            previous = edge;
            w
        })
        .collect();
    // Give every empty extent a column, taken from the widest.
    for i in 0..widths.len() {
        if widths[i] == 0 {
            let widest = (0..widths.len()).max_by_key(|j| widths[*j]).unwrap_or(i);
            if widths[widest] > 1 {
                widths[widest] -= 1;
                widths[i] = 1;
            }
        }
    }
    widths
}

/// How an extent looks: volumes and partitions solid (reversed without colour), the selected volume shaded and
/// bold, free space dotted.
fn extent_look(extent: &Extent, selected: bool, color: bool) -> (Style, char) {
    let solid = if color { Style::default() } else { Style::default().add_modifier(Modifier::REVERSED) };
    match extent.kind {
        _ if selected => (Style::default().fg(Color::Black).bg(Color::Yellow).add_modifier(Modifier::BOLD), '▓'),
        ExtentKind::Volume => (solid.fg(Color::White).bg(Color::Blue), ' '),
        ExtentKind::Partition => (solid.fg(Color::White).bg(Color::Magenta), ' '),
        ExtentKind::Free { largest: true } => (Style::default().fg(Color::Green).add_modifier(Modifier::BOLD), '·'),
        ExtentKind::Free { largest: false } => (Style::default().fg(Color::DarkGray), '·'),
    }
}

/// `text` in exactly `width` columns: a `│` at the start when there is room, then the text, then `fill`.
fn fit(text: &str, width: u16, fill: char) -> String {
    let width = usize::from(width);
    let mut out = String::new();
    if width >= 3 {
        out.push('│');
    }
    out.extend(text.chars().take(width.saturating_sub(out.chars().count())));
    let used = out.chars().count();
    out.extend(std::iter::repeat_n(fill, width.saturating_sub(used)));
    out
}

/// The label of an extent in a band: `◂` when it began on an earlier medium, `▸` when it goes on to the next.
fn band_label(extent: &Extent, whole: &[Extent]) -> String {
    let original = whole.iter().find(|e| e.start <= extent.start && e.end >= extent.end);
    let before = original.is_some_and(|o| o.start < extent.start);
    let after = original.is_some_and(|o| o.end > extent.end);
    format!("{}{}{}", if before { "◂" } else { "" }, extent.label, if after { "▸" } else { "" })
}

/// The bands: each medium's LBA range, or the whole unit when the media are not known.
fn bands(unit: &Unit, media: Option<&Vec<Medium>>) -> Vec<(String, u64, u64)> {
    match media.filter(|m| !m.is_empty()) {
        Some(media) => media
            .iter()
            .map(|m| (format!("medium {}: {}", m.index, m.path), u64::from(m.first_lba), u64::from(m.end_lba())))
            .collect(),
        None => vec![(
            "whole unit (media not known: the unit's agent has not answered)".to_string(),
            0,
            u64::from(unit.capacity_blocks).saturating_sub(1),
        )],
    }
}

pub fn draw(frame: &mut Frame, app: &App, map: &MapView, area: Rect) {
    let Some(unit) = app.pool().unit(map.unit) else {
        let text = format!("Unit #{} is no longer in the pool. Esc goes back.", map.unit);
        frame.render_widget(Paragraph::new(text).block(Block::default().borders(Borders::ALL)), area);
        return;
    };
    let details = detail_lines(app, unit);
    let details_height = wrapped_height(&details, area.width.saturating_sub(2)) + 2;
    let media = app.media.get(&unit.index);
    let bands = bands(unit, media);
    let blocks = bands.iter().map(|b| b.2 + 1).max().unwrap_or(0).max(u64::from(unit.capacity_blocks));
    let extents = unit_extents(app, unit.index, blocks);
    let band_height = if map.lbas { 4 } else { 3 };
    let mut constraints = vec![Constraint::Length(details_height.min(7))];
    constraints.extend(bands.iter().map(|_| Constraint::Length(band_height)));
    constraints.push(Constraint::Min(0));
    let areas = Layout::vertical(constraints).split(area);
    let title = format!(" Unit {} ", unit.label());
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(details).block(block).wrap(Wrap { trim: true }), areas[0]);
    for (i, (name, first, last)) in bands.iter().enumerate() {
        let band = clip(&extents, *first, *last);
        draw_band(frame, app, map, unit, (name, *first, *last), (&band, &extents), areas[i + 1]);
    }
    draw_notes(frame, app, map, unit, &extents, areas[areas.len() - 1]);
}

/// The unit in full: what the units table cuts short.
fn detail_lines(app: &App, unit: &Unit) -> Vec<Line<'static>> {
    let seen = unit.last_seen_unix.map_or("never".to_string(), |t| format!("{} ago", short_age(app.now_unix - t)));
    let agent =
        if unit.agent.is_none() && unit.host_name.is_empty() { "not known".to_string() } else { unit.agent_full() };
    let reason = if unit.reason.is_empty() { "-".to_string() } else { unit.reason.clone() };
    vec![
        Line::from(vec![
            Span::styled(unit.state.to_string(), state_style(unit.state)),
            Span::raw(format!(" · agent {agent} · seen {seen}")),
        ]),
        Line::from(format!("id {}", unit.id)),
        Line::from(format!(
            "{} ({} blocks of {} B), {} free, {} volume{}",
            HumanSize(unit.capacity_bytes()),
            unit.capacity_blocks,
            unit.block_size,
            HumanSize(unit.free_bytes()),
            unit.volumes,
            if unit.volumes == 1 { "" } else { "s" }
        )),
        Line::from(format!("reason: {reason}")),
    ]
}

/// Lines `lines` take when wrapped to `width` columns (roughly: by characters).
fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let width = usize::from(width.max(1));
    lines.iter().map(|l| l.width().div_ceil(width).max(1) as u16).sum()
}

/// One medium: its name and range in the frame, its extents in a line, their first LBAs under them with `b`.
fn draw_band(
    frame: &mut Frame,
    app: &App,
    map: &MapView,
    unit: &Unit,
    (name, first, last): (&str, u64, u64),
    (band, whole): (&[Extent], &[Extent]),
    area: Rect,
) {
    let size = HumanSize((last - first + 1) * u64::from(unit.block_size));
    let block = Block::default().borders(Borders::ALL).title(format!(" {name} · LBA {first}–{last} · {size} "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lengths: Vec<u64> = band.iter().map(Extent::blocks).collect();
    let widths = proportional_widths(&lengths, inner.width);
    let cells = Layout::horizontal(widths.iter().map(|w| Constraint::Length(*w))).split(inner);
    for ((extent, cell), width) in band.iter().zip(cells.iter()).zip(&widths) {
        let selected = extent.volume.is_some() && extent.volume == map.volume;
        let (style, fill) = extent_look(extent, selected, app.color);
        let text = fit(&band_label(extent, whole), *width, fill);
        frame.render_widget(Paragraph::new(Span::styled(text, style)), Rect { height: 1, ..*cell });
        if map.lbas && cell.height >= 2 {
            let lba = fit(&extent.start.to_string(), *width, ' ');
            frame.render_widget(Paragraph::new(lba), Rect { y: cell.y + 1, height: 1, ..*cell });
        }
    }
}

/// Under the bands: the selected volume in words, the legend, and with `b` every boundary's LBAs.
fn draw_notes(frame: &mut Frame, app: &App, map: &MapView, unit: &Unit, extents: &[Extent], area: Rect) {
    let mut lines = Vec::new();
    let selected =
        map.volume.and_then(|v| app.pool().volumes.iter().find(|x| (x.unit_index, x.index) == (unit.index, v)));
    match selected {
        Some(v) => {
            let assigned = app
                .assignment_of(v.unit_index, v.index)
                .map_or("not assigned".to_string(), |a| format!("assigned to {} ({})", a.host_text(), a.mode));
            let size = HumanSize(u64::from(v.length_blocks) * u64::from(unit.block_size));
            lines.push(Line::from(vec![
                Span::styled(
                    format!("▓ {} (volume {})", v.name, v.index),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(": LBA {}–{}, {size}, export {}, {assigned}", v.start_lba, v.end_lba, v.export)),
            ]));
        }
        None if extents.iter().all(|e| e.volume.is_none()) => lines.push(Line::from("The unit has no volumes.")),
        None => lines.push(Line::from("↑/↓ highlights a volume.")),
    }
    let free: Vec<&Extent> = extents.iter().filter(|e| matches!(e.kind, ExtentKind::Free { .. })).collect();
    if let Some(largest) = free.iter().find(|e| e.kind == ExtentKind::Free { largest: true }) {
        let size = HumanSize(largest.blocks() * u64::from(unit.block_size));
        lines.push(Line::from(format!(
            "largest free: LBA {}–{} ({size}), {} free extent{}",
            largest.start,
            largest.end,
            free.len(),
            if free.len() == 1 { "" } else { "s" }
        )));
    }
    lines.push(Line::styled(
        "│vol volume  │vol/p1 partition  ·free·  ▓ selected  ◂ ▸ goes on across media",
        Style::default().fg(Color::DarkGray),
    ));
    if map.lbas {
        let list: Vec<String> = extents.iter().map(|e| format!("{} {}–{}", e.label, e.start, e.end)).collect();
        lines.push(Line::from(format!("LBAs: {}", list.join(" · "))));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
}
