//! Drawing: one module per screen, each rendering from [`App`] alone; this module draws the frame around them
//! (screen tabs, status line, the key hints of the focused pane) and the overlays (filter prompt, help, forms,
//! confirmation).
//!
//! Everything fits 80×24: columns shrink before they disappear, and long texts are cut by ratatui. With
//! `NO_COLOR` ([`App::color`] false) every colour is taken off the finished frame; what colour says is also said by
//! words, symbols and reversed or bold text.

pub mod activity;
pub mod hosts;
pub mod map;
pub mod notifications;
pub mod pending;
pub mod tasks;
pub mod units;
pub mod volumes;

use crate::app::{App, Pane, Screen, View};
use crate::model::short_age;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap};
use ratatui::Frame;
use std::ops::Range;

/// Draws the whole console.
pub fn draw(frame: &mut Frame, app: &App) {
    // Long messages and errors get a second and third line rather than being cut.
    let status_text = app.message.as_ref().map(|m| &m.text).or(app.pool_error.as_ref());
    // The slack covers word wrapping and the age the pool error gets.
    let status_len = status_text.map_or(0, |m| m.chars().count() + 20);
    let status_height = status_len.div_ceil(usize::from(frame.area().width.max(1))).clamp(1, 3) as u16;
    let [tabs, body, status, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(status_height),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_tabs(frame, app, tabs);
    match (&app.view, app.screen) {
        (Some(View::Map(map)), _) => map::draw(frame, app, map, body),
        (_, Screen::Units) => units::draw(frame, app, body),
        (_, Screen::Volumes) => volumes::draw(frame, app, body),
        (_, Screen::Hosts) => hosts::draw(frame, app, body),
        (_, Screen::Notifications) => notifications::draw(frame, app, body),
        (_, Screen::Activity) => activity::draw(frame, app, body),
        (_, Screen::Tasks) => tasks::draw(frame, app, body),
        (_, Screen::Pending) => pending::draw(frame, app, body),
    }
    if let Some(View::Notification(id)) = app.view {
        notifications::draw_detail(frame, app, id);
    }
    draw_status(frame, app, status);
    draw_hints(frame, app, hints);
    if app.help {
        draw_help(frame);
    }
    if let Some(form) = &app.form {
        draw_form(frame, form);
    }
    if let Some(confirm) = &app.confirm {
        draw_confirm(frame, &confirm.question());
    }
    if !app.color {
        strip_colors(frame.buffer_mut());
    }
}

/// Whether the console should use colour: not when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>). `no_color` is the variable's value.
pub fn color_wanted(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

/// Takes every colour off a drawn frame, keeping symbols and modifiers (bold, reversed, underlined).
pub fn strip_colors(buffer: &mut Buffer) {
    for cell in &mut buffer.content {
        cell.fg = Color::Reset;
        cell.bg = Color::Reset;
    }
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let titles: Vec<Line> =
        Screen::ALL.iter().map(|s| Line::from(format!("{} {}", s.number() + 1, s.title()))).collect();
    let tabs = Tabs::new(titles)
        .select(app.screen.number())
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD))
        .divider("|")
        .padding("", "");
    frame.render_widget(tabs, area);
}

/// The status line: the filter prompt while typing one, else a message, else the station's state.
fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let filter_error = app.filter_error(app.pane);
    let line = if app.filter_editing {
        let mut spans = vec![
            Span::styled("/", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(app.filter(app.pane).to_string()),
            Span::styled("_", Style::default().add_modifier(Modifier::SLOW_BLINK)),
        ];
        match filter_error {
            Some(error) => spans.push(Span::styled(format!("  {error}"), Style::default().fg(Color::Red))),
            None => spans.push(Span::styled("  Enter keep  Esc clear", Style::default().fg(Color::DarkGray))),
        }
        Line::from(spans)
    } else if let Some(error) = filter_error.filter(|_| app.message.is_none()) {
        Line::from(Span::styled(
            format!("filter: {error} (/ edits it, Esc clears it)"),
            Style::default().fg(Color::Red),
        ))
    } else if let Some(message) = &app.message {
        let color = if message.error { Color::Red } else { Color::Yellow };
        Line::from(Span::styled(message.text.clone(), Style::default().fg(color)))
    } else if let Some(error) = &app.pool_error {
        let age = match app.pool_read_unix {
            Some(read) => format!(" (showing data from {} ago)", short_age(app.now_unix - read)),
            None => String::new(),
        };
        Line::from(Span::styled(format!("{error}{age}"), Style::default().fg(Color::Red)))
    } else {
        let mut station = match app.pool_read_unix {
            Some(_) => format!("station {} · {} units", app.station, app.pool().units.len()),
            None => format!("station {} · connecting…", app.station),
        };
        let active = app.tasks.iter().filter(|t| !t.state.is_ended()).count();
        match active {
            0 => {}
            1 => station.push_str(" · 1 task active"),
            n => station.push_str(&format!(" · {n} tasks active")),
        }
        match app.waiting_count() {
            0 => {}
            n => station.push_str(&format!(" · {n} pending approval (P)")),
        }
        Line::from(station)
    };
    frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), area);
}

/// The keys of the focused pane (and the way to the rest), as `(key, what)`.
pub fn hints(app: &App) -> &'static [(&'static str, &'static str)] {
    if app.confirm.is_some() {
        return &[("y", "yes"), ("n/Esc", "no")];
    }
    if app.form.is_some() {
        return &[("Enter", "submit"), ("Tab", "next field"), ("Esc", "cancel")];
    }
    if app.help {
        return &[("?/Esc", "close help"), ("q", "quit")];
    }
    match app.view {
        Some(View::Map(_)) => return &[("b", "boundary LBAs"), ("↑/↓", "volume"), ("Esc", "close"), ("q", "quit")],
        Some(View::Notification(_)) => return &[("↑/↓", "previous/next"), ("Esc", "close"), ("q", "quit")],
        None => {}
    }
    match app.pane {
        Pane::Units => &[
            ("Enter", "map"),
            ("a", "add unit"),
            ("c", "volume"),
            ("p", "partition"),
            ("r", "rescan"),
            ("n", "allocate"),
            ("?", "help"),
        ],
        Pane::Volumes => &[
            ("m", "map"),
            ("c", "volume"),
            ("p", "partition"),
            ("d", "destroy"),
            ("a", "assign"),
            ("u", "unassign"),
            ("n", "allocate"),
            ("?", "help"),
        ],
        Pane::Partitions => &[("p", "partition"), ("d", "destroy partition"), ("Tab", "pane"), ("?", "help")],
        Pane::Hosts => &[("a", "assign"), ("u", "unassign"), ("n", "allocate"), ("/", "filter"), ("?", "help")],
        Pane::Notifications => {
            &[("Enter", "details"), ("/", "filter unit:X type:X"), ("G", "follow"), ("?", "help"), ("q", "quit")]
        }
        Pane::Activity => &[("/", "filter"), ("?", "help"), ("q", "quit")],
        Pane::Tasks => &[("c", "cancel"), ("x", "remove"), ("/", "filter"), ("?", "help"), ("q", "quit")],
        Pane::Pending => &[("A", "approve"), ("X", "reject"), ("/", "filter"), ("?", "help"), ("q", "quit")],
    }
}

/// The bottom line: the keys of what has the focus.
fn draw_hints(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    for (i, (key, what)) in hints(app).iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(*key, Style::default().fg(Color::Cyan)));
        spans.push(Span::styled(format!(" {what}"), Style::default().fg(Color::DarkGray)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A pane's frame: its title, the filter when one is set, and a highlight when it has the focus.
pub fn pane_block(app: &App, pane: Pane, title: &str) -> Block<'static> {
    let filter = app.filter(pane);
    let title = if filter.is_empty() { format!(" {title} ") } else { format!(" {title} [/{filter}] ") };
    let style = if app.focused(pane) { Style::default().fg(Color::Cyan) } else { Style::default() };
    Block::default().borders(Borders::ALL).border_style(style).title(title)
}

/// What a table pane shows.
pub struct TableView<'a> {
    pub pane: Pane,
    pub block: Block<'static>,
    pub header: &'static [&'static str],
    pub widths: Vec<Constraint>,
    pub rows: Rows<'a>,
    /// Shown instead of the table when there are no rows.
    pub empty: String,
}

/// A table's rows: all of them made, or made on demand, only those on screen (for long lists: the Units screen
/// with 10,000 units makes the 30 rows it shows).
pub enum Rows<'a> {
    All(Vec<Row<'static>>),
    /// `count` rows; `row(i)` makes the `i`th.
    Lazy {
        count: usize,
        row: Box<dyn Fn(usize) -> Row<'static> + 'a>,
    },
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        match self {
            Rows::All(rows) => rows.len(),
            Rows::Lazy { count, .. } => *count,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `range` (within `0..len`).
    fn window(self, range: Range<usize>) -> Vec<Row<'static>> {
        match self {
            Rows::All(rows) => rows.into_iter().skip(range.start).take(range.len()).collect(),
            Rows::Lazy { row, .. } => range.map(row).collect(),
        }
    }
}

/// The rows a table of `count` one-line rows shows in `lines` lines with row `selected` selected: from the top
/// while the selection fits, else with the selection on the last line (what ratatui's `Table` does from a fresh
/// state).
pub fn visible_window(count: usize, selected: usize, lines: usize) -> Range<usize> {
    let selected = selected.min(count.saturating_sub(1));
    let start = (selected + 1).saturating_sub(lines);
    start..(start + lines).min(count)
}

/// Where a drawn table's rows and columns are, so widgets (gauges, sparklines) can be drawn into its cells.
#[derive(Clone, Debug, Default)]
pub struct TableGeometry {
    /// The rows on screen: (index in the view's rows, the row's line).
    pub rows: Vec<(usize, Rect)>,
    /// The columns: (x, width).
    pub columns: Vec<(u16, u16)>,
}

impl TableGeometry {
    /// The cell of column `column` in the on-screen row `row`.
    pub fn cell(&self, row: Rect, column: usize) -> Option<Rect> {
        let (x, width) = *self.columns.get(column)?;
        Some(Rect { x, width, ..row }.intersection(row))
    }
}

/// Width of the selection marker column (`>`), as the table lays it out.
const SELECTION_WIDTH: u16 = 1;
const COLUMN_SPACING: u16 = 1;

/// A table with a header and the pane's selection, or the view's empty text. Returns where the rows went.
pub fn draw_table(frame: &mut Frame, app: &App, area: Rect, view: TableView<'_>) -> TableGeometry {
    if view.rows.is_empty() {
        let text = Paragraph::new(view.empty).block(view.block).wrap(Wrap { trim: true });
        frame.render_widget(text, area);
        return TableGeometry::default();
    }
    let inner = view.block.inner(area);
    // Only the rows on screen are made and given to the table (the header takes the first line).
    let body_lines = inner.height.saturating_sub(1);
    // As the table does, a selection past the end is on the last row.
    let selected = app.selected(view.pane).min(view.rows.len() - 1);
    let window = visible_window(view.rows.len(), selected, usize::from(body_lines));
    let first = window.start;
    let rows = view.rows.window(window);
    // The same column layout the table makes (ratatui's Table: selection column, then the widths from the start).
    let [_, columns_area] = Layout::horizontal([Constraint::Length(SELECTION_WIDTH), Constraint::Fill(0)]).areas(inner);
    let columns = Layout::horizontal(view.widths.clone())
        .flex(Flex::Start)
        .spacing(COLUMN_SPACING)
        .split(columns_area)
        .iter()
        .map(|c| (c.x, c.width))
        .collect();
    let header = Row::new(view.header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD));
    let selected = selected.checked_sub(first).filter(|at| *at < rows.len());
    let row_count = rows.len();
    let table = Table::new(rows, view.widths)
        .header(header)
        .block(view.block)
        .column_spacing(COLUMN_SPACING)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol(if app.focused(view.pane) { ">" } else { " " });
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
    let rows = (state.offset()..row_count)
        .zip(0..body_lines)
        .map(|(at, line)| (first + at, Rect { x: inner.x, y: inner.y + 1 + line, width: inner.width, height: 1 }))
        .collect();
    TableGeometry { rows, columns }
}

/// A rectangle of at most `width`×`height` centred in `area`.
/// Width of a column holding texts of these lengths: the longest, within `min..=max`.
pub fn column_width(lengths: impl Iterator<Item = usize>, min: u16, max: u16) -> u16 {
    let longest = lengths.max().unwrap_or(0);
    u16::try_from(longest).unwrap_or(max).clamp(min, max)
}

pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

pub const HELP: &[(&str, &str)] = &[
    ("1-7, F1-F7", "go to a screen"),
    ("P", "units waiting for approval (Pending)"),
    ("←/→, h/l", "previous/next screen"),
    ("Tab, S-Tab", "next/previous pane"),
    ("↑/↓, j/k", "move the selection"),
    ("PgUp/PgDn, g/G", "page up/down, first/last"),
    ("/", "filter (notifications: unit:X type:X)"),
    ("Esc", "clear the filter and the message"),
    ("Enter, m", "map of a unit (b: LBAs); notification in full"),
    ("a", "add a unit (Units)"),
    ("c", "create a volume (Units, Volumes)"),
    ("p", "create a partition (Units, Volumes)"),
    ("d", "destroy the selected volume/partition"),
    ("r", "rescan the selected unit (Units)"),
    ("R", "remove the selected unit from the pool (Units)"),
    ("a, u", "assign/unassign a volume (Volumes, Hosts)"),
    ("n", "allocate storage for a host"),
    ("c", "cancel the selected pending task (Tasks)"),
    ("x, Delete", "remove the selected ended task (Tasks)"),
    ("A, X", "approve/reject the selected unit (Pending)"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

fn draw_help(frame: &mut Frame) {
    let area = centered(frame.area(), 62, HELP.len() as u16 + 2);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![Span::styled(format!("{keys:>15}  "), Style::default().fg(Color::Cyan)), Span::raw(*what)])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Help (? or Esc closes) ")),
        area,
    );
}

fn draw_form(frame: &mut Frame, form: &crate::form::Form) {
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let marker = if focused { "> " } else { "  " };
        let cursor = if focused { "_" } else { "" };
        lines.push(Line::from(vec![
            Span::raw(format!("{marker}{}: ", field.label)),
            Span::styled(format!("{}{cursor}", field.value), Style::default().add_modifier(Modifier::BOLD)),
        ]));
        if let Some(error) = &field.error {
            lines.push(Line::from(Span::styled(format!("    {error}"), Style::default().fg(Color::Red))));
        }
    }
    lines.push(Line::from(Span::styled(
        "Enter submit  Tab next field  Esc cancel",
        Style::default().fg(Color::DarkGray),
    )));
    let height = lines.len() as u16 + 4;
    let area = centered(frame.area(), 70, height);
    frame.render_widget(Clear, area);
    let block = Block::default().borders(Borders::ALL).title(format!(" {} ", form.title()));
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), area);
}

fn draw_confirm(frame: &mut Frame, question: &str) {
    // Room for the whole question, wrapped, however long it is (notes make it longer).
    let lines = question.chars().count().div_ceil(54) as u16 + 1;
    let area = centered(frame.area(), 60, lines + 2);
    frame.render_widget(Clear, area);
    let block = Block::default().borders(Borders::ALL).border_style(Style::default().fg(Color::Red)).title(" Confirm ");
    frame.render_widget(Paragraph::new(question.to_string()).block(block).wrap(Wrap { trim: true }), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    /// The row numbers a ratatui table of `count` rows shows in `lines` lines from a fresh state with `selected`.
    fn shown_by_ratatui(count: usize, selected: usize, lines: u16) -> Vec<usize> {
        let mut terminal = Terminal::new(TestBackend::new(12, lines)).unwrap();
        let rows: Vec<Row> = (0..count).map(|i| Row::new(vec![i.to_string()])).collect();
        let table = Table::new(rows, [Constraint::Length(10)]).highlight_symbol(">");
        let mut state = TableState::default().with_selected(Some(selected));
        terminal.draw(|frame| frame.render_stateful_widget(table, frame.area(), &mut state)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..lines)
            .filter_map(|y| {
                let line: String = (0..12).map(|x| buffer[(x, y)].symbol()).collect();
                line.trim_start_matches(['>', ' ']).trim().parse().ok()
            })
            .collect()
    }

    #[test]
    fn the_visible_window_is_the_one_ratatui_shows() {
        for count in 1..14 {
            for selected in 0..count + 2 {
                for lines in 1..6 {
                    let window: Vec<usize> = visible_window(count, selected, usize::from(lines)).collect();
                    assert_eq!(
                        window,
                        shown_by_ratatui(count, selected, lines),
                        "{count} rows, row {selected} selected, {lines} lines"
                    );
                }
            }
        }
        assert_eq!(visible_window(10_000, 9_999, 30), 9_970..10_000);
        assert_eq!(visible_window(10_000, 5, 0).len(), 0);
    }
}
