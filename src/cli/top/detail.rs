//! One venue drilled into: its row, its connections, and its instruments
//! with the age and state of each data type and of the book (those
//! columns only when an instrument has a book), from the
//! relay's per-instrument `/health` (shown as `n/a` where the relay does
//! not report it).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Paragraph, Widget};

use super::format;
use super::health::{BookHealth, InstrumentHealth, TypeHealth, VenueHealth};
use super::view::{
    Screen, Ui, VENUE_COLUMNS, VENUE_NUMBERS, status_style, text_table, venue_cells,
};
use crate::domain::DataType;

/// Shown where the relay has no per-instrument health.
pub(super) const NO_INSTRUMENTS: &str =
    "instruments: n/a (this relay's /health has no per-instrument section)";

fn connections_rows(v: &VenueHealth) -> Vec<(Vec<String>, Style)> {
    v.connections
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let cells = vec![
                c.index.unwrap_or(i as u64).to_string(),
                c.state.clone().unwrap_or_else(|| "n/a".into()),
                c.last_frame_age_ms
                    .map_or_else(|| "-".into(), format::age_ms),
                format::count(c.reconnects),
                c.last_error.clone().unwrap_or_default(),
            ];
            (cells, status_style(c.state.as_deref()))
        })
        .collect()
}

/// The data types the instruments report, in the relay's order (unknown
/// names last, alphabetically).
fn data_types(instruments: &[InstrumentHealth]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for i in instruments {
        for k in i.data_types.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let rank = |n: &str| {
        DataType::ALL
            .iter()
            .position(|t| t.as_str() == n)
            .unwrap_or(DataType::ALL.len())
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    names
}

fn type_cell(t: Option<&TypeHealth>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let state = t.state.as_deref().unwrap_or("n/a");
    match t.age_ms {
        Some(ms) => format!("{state} {}", format::age_ms(ms)),
        None => state.to_owned(),
    }
}

fn book_cells(b: Option<&BookHealth>) -> [String; 3] {
    match b {
        None => ["-".into(), "-".into(), "-".into()],
        Some(b) => [
            b.state.clone().unwrap_or_else(|| "n/a".into()),
            b.last_update_id
                .map_or_else(|| "-".into(), |u| u.to_string()),
            b.age_ms.map_or_else(|| "-".into(), format::age_ms),
        ],
    }
}

/// The worst state of an instrument, for its row's colour.
fn instrument_state(i: &InstrumentHealth) -> Option<&str> {
    let states = i
        .data_types
        .values()
        .filter_map(|t| t.state.as_deref())
        .chain(i.book.as_ref().and_then(|b| b.state.as_deref()));
    let mut worst = None;
    for s in states {
        match s {
            "stale" => return Some("stale"),
            "waiting" | "resyncing" => worst = Some("waiting"),
            _ => {
                worst.get_or_insert("live");
            }
        }
    }
    worst
}

fn instruments_table(instruments: &[InstrumentHealth], skip: usize, area: Rect, buf: &mut Buffer) {
    if instruments.is_empty() {
        Paragraph::new("instruments: none").render(area, buf);
        return;
    }
    let types = data_types(instruments);
    let books = instruments.iter().any(|i| i.book.is_some());
    let mut titles: Vec<&str> = vec!["INSTRUMENT", "SYMBOL"];
    titles.extend(types.iter().map(String::as_str));
    if books {
        titles.extend(["BOOK", "BOOK ID", "BOOK AGE"]);
    }
    let rows = instruments
        .iter()
        .skip(skip)
        .map(|i| {
            let mut cells = vec![
                i.instrument.clone(),
                i.symbol.clone().unwrap_or_else(|| "-".into()),
            ];
            cells.extend(types.iter().map(|t| type_cell(i.data_types.get(t))));
            if books {
                cells.extend(book_cells(i.book.as_ref()));
            }
            (cells, status_style(instrument_state(i)))
        })
        .collect();
    let table = text_table(&titles, rows, &[]);
    Widget::render(table, area, buf);
}

/// Lines the drill-down into `venue` needs.
pub(super) fn height(s: &Screen, venue: &str) -> u16 {
    let v = s.health.venues.get(venue);
    let conns = v.map_or(1, |v| 1 + v.connections.len());
    let instruments = v
        .and_then(|v| v.instruments.as_ref())
        .map_or(1, |i| 1 + i.len().max(1));
    (2 + 1 + conns + 1 + instruments) as u16
}

/// Draw the drill-down into `venue`.
pub(super) fn render(s: &Screen, ui: &Ui, venue: &str, area: Rect, buf: &mut Buffer) {
    let health = s.health.venues.get(venue);
    let conns = health.map_or(1, |v| 1 + v.connections.len()) as u16;
    let [row, _, conn_area, _, inst_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(conns),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    match s.overview.venues.iter().find(|r| r.venue == venue) {
        Some(r) => {
            let rows = vec![(venue_cells(r).to_vec(), status_style(r.status.as_deref()))];
            Widget::render(text_table(&VENUE_COLUMNS, rows, &VENUE_NUMBERS), row, buf);
        }
        None => Paragraph::new(format!("venue {venue}: not in this relay")).render(row, buf),
    }
    match health {
        Some(h) => {
            let titles = ["CONN", "STATE", "LAST FRAME", "RECONNECTS", "LAST ERROR"];
            let table = text_table(&titles, connections_rows(h), &[2, 3]);
            Widget::render(table, conn_area, buf);
        }
        None => Paragraph::new("connections: n/a").render(conn_area, buf),
    }
    match health.and_then(|h| h.instruments.as_ref()) {
        Some(list) => {
            let skip = ui.scroll.min(list.len().saturating_sub(1));
            instruments_table(list, skip, inst_area, buf);
        }
        None => Paragraph::new(NO_INSTRUMENTS).render(inst_area, buf),
    }
}
