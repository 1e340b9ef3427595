//! The screen of `mdrelay top`, drawn into a ratatui buffer: a header with
//! the relay's status and totals, then the venues table, or one venue's
//! connections and instruments ([`super::detail`]). The same drawing gives
//! the live terminal and the plain text of `--once` ([`text`]).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, StatefulWidget, Table, TableState, Widget};

use super::detail;
use super::format;
use super::health::HealthDoc;
use super::model::{Overview, VenueRow};

/// What to draw.
pub(super) struct Screen<'a> {
    /// The relay's base URL.
    pub url: &'a str,
    /// Figures from the last two scrapes.
    pub overview: &'a Overview,
    /// The last `/health`.
    pub health: &'a HealthDoc,
    /// Why the last scrape failed, if it did (the figures are older).
    pub error: Option<&'a str>,
    /// A live terminal (selection and key help) rather than `--once`.
    pub interactive: bool,
}

/// Where the user is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Ui {
    /// Selected row of the venues table.
    pub selected: usize,
    /// The venue drilled into.
    pub venue: Option<String>,
    /// First instrument row shown (drill-down).
    pub scroll: usize,
}

/// Spacing between table columns.
pub(super) const GAP: u16 = 2;

/// A table row cell style for a status word.
pub(super) fn status_style(status: Option<&str>) -> Style {
    match status {
        Some("healthy" | "connected" | "live" | "synced") => Style::new().fg(Color::Green),
        Some("degraded" | "reconnecting" | "connecting" | "waiting" | "resyncing") => {
            Style::new().fg(Color::Yellow)
        }
        Some(_) => Style::new().fg(Color::Red),
        None => Style::new(),
    }
}

fn header_lines(s: &Screen) -> Vec<Line<'static>> {
    let status = s.overview.status.clone().unwrap_or_else(|| "n/a".into());
    let window = s
        .overview
        .window_s
        .map_or_else(|| "first scrape".into(), |w| format!("over {w:.1}s"));
    let t = &s.overview.totals;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("mdrelay top", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!("  {}  status ", s.url)),
            Span::styled(status.clone(), status_style(Some(&status))),
            Span::raw(format!(
                "  nats {}  ({window})",
                s.overview.nats.as_deref().unwrap_or("n/a")
            )),
        ]),
        Line::from(format!(
            "frames/s {}  events/s {}  stored/s {}  duplicate/s {}  dropped/s {}  in flight {}",
            format::rate(t.frames_per_s),
            format::rate(t.events_per_s),
            format::rate(t.published_per_s),
            format::rate(t.duplicate_per_s),
            format::rate(t.dropped_per_s),
            t.in_flight
                .map_or_else(|| "n/a".into(), |n| format!("{n:.0}")),
        )),
    ];
    if let Some(e) = s.error {
        lines.push(Line::styled(
            format!("scrape failed (figures are older): {e}"),
            Style::new().fg(Color::Red),
        ));
    }
    lines
}

/// Titles of the venues table.
pub(super) const VENUE_COLUMNS: [&str; 12] = [
    "VENUE", "STATUS", "CONN", "FRAMES/S", "EVENTS/S", "LAG P50", "LAG P99", "ACK P50", "ACK P99",
    "GAPS", "RECONN", "STALE",
];

/// The right-aligned columns of the venues table.
pub(super) const VENUE_NUMBERS: [usize; 10] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

/// The cells of one venue row, in [`VENUE_COLUMNS`] order.
pub(super) fn venue_cells(v: &VenueRow) -> [String; 12] {
    [
        v.venue.clone(),
        v.status.clone().unwrap_or_else(|| "n/a".into()),
        match v.conns {
            (up, Some(total)) => format!("{up}/{total}"),
            (up, None) => format!("{up}/?"),
        },
        format::rate(v.frames_per_s),
        format::rate(v.events_per_s),
        format::quantile(v.lag.p50),
        format::quantile(v.lag.p99),
        format::quantile(v.ack.p50),
        format::quantile(v.ack.p99),
        v.gaps.to_string(),
        v.reconnects.to_string(),
        v.stale.map_or_else(|| "-".into(), |n| n.to_string()),
    ]
}

/// A table of text cells: columns as wide as their widest cell, the
/// columns in `right` (numbers) right-aligned.
pub(super) fn text_table<'a>(
    titles: &[&str],
    rows: Vec<(Vec<String>, Style)>,
    right: &[usize],
) -> Table<'a> {
    let mut widths: Vec<usize> = titles.iter().map(|t| t.len()).collect();
    for (cells, _) in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |i: usize, text: String| {
        let l = Line::from(text);
        if right.contains(&i) {
            l.right_aligned()
        } else {
            l
        }
    };
    let header = Row::new(titles.iter().enumerate().map(|(i, t)| line(i, (*t).into())))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let body: Vec<Row> = rows
        .into_iter()
        .map(|(cells, style)| {
            Row::new(cells.into_iter().enumerate().map(|(i, c)| line(i, c))).style(style)
        })
        .collect();
    Table::new(body, widths.iter().map(|&w| Constraint::Length(w as u16)))
        .header(header)
        .column_spacing(GAP)
}

fn venues_table(s: &Screen, ui: &Ui, area: Rect, buf: &mut Buffer) {
    if s.overview.venues.is_empty() {
        Paragraph::new("no venue in /health or /metrics").render(area, buf);
        return;
    }
    let rows = s
        .overview
        .venues
        .iter()
        .map(|v| (venue_cells(v).to_vec(), status_style(v.status.as_deref())))
        .collect();
    let table = text_table(&VENUE_COLUMNS, rows, &VENUE_NUMBERS);
    let mut state = TableState::default();
    if s.interactive {
        state.select(Some(ui.selected.min(s.overview.venues.len() - 1)));
    }
    let table = table.row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    StatefulWidget::render(table, area, buf, &mut state);
}

fn footer(ui: &Ui) -> Line<'static> {
    let keys = if ui.venue.is_some() {
        "up/down scroll   Esc/Left back   q quit"
    } else {
        "up/down select   Enter instruments   q/Esc quit"
    };
    Line::styled(keys, Style::new().add_modifier(Modifier::DIM))
}

/// Lines the body needs (for `--once`, which is as tall as its content).
fn body_height(s: &Screen, ui: &Ui) -> u16 {
    match &ui.venue {
        Some(v) => detail::height(s, v),
        None => s.overview.venues.len().max(1) as u16 + 1,
    }
}

/// Lines the whole screen needs.
pub(super) fn height(s: &Screen, ui: &Ui) -> u16 {
    header_lines(s).len() as u16 + 1 + body_height(s, ui) + u16::from(s.interactive)
}

/// Draw the screen into `area` of `buf`.
pub(super) fn render(s: &Screen, ui: &Ui, area: Rect, buf: &mut Buffer) {
    let head = header_lines(s);
    let [top, _, body, foot] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(u16::from(s.interactive)),
    ])
    .areas(area);
    Paragraph::new(head).render(top, buf);
    match &ui.venue {
        Some(v) => detail::render(s, ui, v, body, buf),
        None => venues_table(s, ui, body, buf),
    }
    if s.interactive {
        Paragraph::new(footer(ui)).render(foot, buf);
    }
}

/// The buffer as plain text: no styles, no escape codes, trailing blanks
/// and blank last lines removed.
pub(super) fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut hidden = 0usize;
        for x in area.left()..area.right() {
            if hidden > 0 {
                hidden -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            hidden = Span::raw(sym).width().saturating_sub(1);
            line.push_str(sym);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let end = out.trim_end_matches('\n').len();
    out.truncate(end);
    out.push('\n');
    out
}

/// The screen as plain text `width` columns wide (`--once`).
pub(super) fn plain(s: &Screen, ui: &Ui, width: u16) -> String {
    let area = Rect::new(0, 0, width, height(s, ui));
    let mut buf = Buffer::empty(area);
    render(s, ui, area, &mut buf);
    text(&buf)
}

#[cfg(test)]
mod tests;
