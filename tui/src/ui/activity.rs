//! The Activity screen: per export and host, busiest first, the current read and write throughput with a
//! sparkline of each over the last minute (reads and writes per second too on wide screens); below, a chart of
//! the throughput of the units over the last minutes. Rates come from the units' own dvsanTrafficTable counters
//! sampled at every refresh; the history is the console's own ([`crate::history`]), kept while it runs.

use super::{draw_table, pane_block, Rows, TableView};
use crate::app::{App, Pane};
use crate::history::CHART_SECS;
use crate::model::{byte_rate, short_rate};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Row, Sparkline};
use ratatui::Frame;

/// From this width on, the table has reads and writes per second.
const OPS_FROM: u16 = 110;
/// The sparkline columns (read, write) in the table.
const SPARK_COLUMNS: [usize; 2] = [4, 6];
/// Units charted side by side at most.
const MAX_CHARTS: usize = 3;

pub fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let errors = app.traffic_errors.len().min(3) as u16;
    let chart_height = if area.height >= 18 { area.height / 2 } else { 0 };
    let [table_area, chart_area, error_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(chart_height), Constraint::Length(errors)])
            .areas(area);
    draw_rows(frame, app, table_area);
    if chart_height > 0 {
        draw_charts(frame, app, chart_area);
    }
    let lines: Vec<Line> = app
        .traffic_errors
        .iter()
        .take(3)
        .map(|e| Line::styled(format!("no traffic from {e}"), Style::default().fg(Color::Red)))
        .collect();
    frame.render_widget(Paragraph::new(lines), error_area);
}

/// Buckets of per-second values into `columns` bars covering them all: each bar the highest of its seconds.
pub fn buckets(seconds: &[Option<u64>], columns: u16) -> Vec<Option<u64>> {
    let per_bar = seconds.len().div_ceil(usize::from(columns.max(1))).max(1);
    // Whole buckets from the newest second back, so the last bar is always "now".
    let skip = seconds.len() % per_bar;
    let mut bars: Vec<Option<u64>> =
        seconds[skip..].chunks(per_bar).map(|c| c.iter().flatten().max().copied()).collect();
    if skip > 0 {
        bars.insert(0, seconds[..skip].iter().flatten().max().copied());
    }
    let extra = bars.len().saturating_sub(usize::from(columns));
    bars.split_off(extra)
}

fn draw_rows(frame: &mut Frame, app: &App, area: Rect) {
    let with_ops = area.width >= OPS_FROM;
    let traffic = app.visible_traffic();
    let rows = traffic
        .iter()
        .map(|t| {
            let (read, written) = t.rates.map_or(("…".to_string(), "…".to_string()), |r| {
                (byte_rate(r.bytes_read), byte_rate(r.bytes_written))
            });
            let mut cells = vec![t.unit_label.clone(), t.export.clone(), t.host.clone(), read, String::new(), written];
            cells.push(String::new());
            if with_ops {
                let (reads, writes) = t
                    .rates
                    .map_or(("…".to_string(), "…".to_string()), |r| (short_rate(r.reads), short_rate(r.writes)));
                cells.extend([reads, writes]);
            }
            Row::new(cells)
        })
        .collect();
    let empty = if app.filter(Pane::Activity).is_empty() {
        "No traffic: no host has opened an export on an available unit yet."
    } else {
        "No traffic matches the filter (Esc clears it)."
    };
    let spark = Constraint::Fill(1);
    let (header, mut widths): (&'static [&'static str], _) = (
        &["Unit", "Export", "Host", "Read", "last 60 s", "Written", "last 60 s", "Reads/s", "Writes/s"],
        vec![
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(if with_ops { 15 } else { 10 }),
            Constraint::Length(11),
            spark,
            Constraint::Length(11),
            spark,
        ],
    );
    if with_ops {
        widths.extend([Constraint::Length(8), Constraint::Length(8)]);
    }
    let header = &header[..widths.len()];
    let view = TableView {
        pane: Pane::Activity,
        block: pane_block(app, Pane::Activity, "Activity (busiest first; throughput per second)"),
        header,
        widths,
        rows: Rows::All(rows),
        empty: empty.to_string(),
    };
    let geometry = draw_table(frame, app, area, view);
    for (index, row) in &geometry.rows {
        let Some(t) = traffic.get(*index) else { continue };
        let (read, written) =
            app.history.export_seconds(&(t.unit_index, t.export.clone(), t.host.clone()), app.now_unix);
        // Reads and writes share a scale, so the two lines compare.
        let max = read.iter().chain(&written).flatten().max().copied().unwrap_or(0).max(1);
        for (series, column, color) in
            [(read, SPARK_COLUMNS[0], Color::Cyan), (written, SPARK_COLUMNS[1], Color::Magenta)]
        {
            let Some(cell) = geometry.cell(*row, column) else { continue };
            let bars = buckets(&series, cell.width);
            let sparkline =
                Sparkline::default().data(bars).max(max).style(Style::default().fg(color)).absent_value_symbol("·");
            frame.render_widget(sparkline, cell);
        }
    }
}

/// A throughput chart per unit with traffic (the selected row's unit first), side by side.
fn draw_charts(frame: &mut Frame, app: &App, area: Rect) {
    let traffic = app.visible_traffic();
    let mut units: Vec<(u32, String)> = Vec::new();
    let selected = traffic.get(app.selected(Pane::Activity)).map(|t| (t.unit_index, t.unit_label.clone()));
    for (index, label) in selected.into_iter().chain(app.traffic.iter().map(|t| (t.unit_index, t.unit_label.clone()))) {
        if !units.iter().any(|(i, _)| *i == index) {
            units.push((index, label));
        }
    }
    let fits = usize::from(area.width / 38).clamp(1, MAX_CHARTS);
    units.truncate(fits);
    if units.is_empty() {
        let block = Block::default().borders(Borders::ALL).title(" Throughput per unit ");
        frame.render_widget(Paragraph::new("No unit has traffic to chart yet.").block(block), area);
        return;
    }
    let areas = Layout::horizontal(units.iter().map(|_| Constraint::Fill(1))).split(area);
    for ((index, label), chart_area) in units.iter().zip(areas.iter()) {
        draw_chart(frame, app, *index, label, *chart_area);
    }
}

fn draw_chart(frame: &mut Frame, app: &App, unit: u32, label: &str, area: Rect) {
    let (read, written) = app.history.unit_points(unit, app.now_unix);
    let max = read.iter().chain(&written).map(|p| p.1).fold(0.0, f64::max).max(1.0);
    let minutes = CHART_SECS / 60;
    let datasets = vec![
        Dataset::default()
            .name("read ⣿")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Cyan))
            .data(&read),
        Dataset::default()
            .name("written •")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(Color::Magenta))
            .data(&written),
    ];
    let chart = Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(format!(" {label}, last {minutes} min ")))
        .x_axis(Axis::default().bounds([-(CHART_SECS as f64), 0.0]).labels([
            Span::raw(format!("-{minutes}m")),
            Span::raw(format!("-{}m", minutes / 2)),
            Span::raw("now"),
        ]))
        .y_axis(Axis::default().bounds([0.0, max * 1.1]).labels([Span::raw("0"), Span::raw(byte_rate(max))]))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}
