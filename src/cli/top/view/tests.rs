use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::cli::top::model::{Latency, Quantile, Totals};

fn overview() -> Overview {
    Overview {
        status: Some("degraded".into()),
        nats: Some("connected".into()),
        window_s: Some(1.0),
        totals: Totals {
            frames_per_s: Some(1234.0),
            events_per_s: Some(2000.0),
            published_per_s: Some(1990.0),
            duplicate_per_s: Some(10.0),
            dropped_per_s: Some(0.0),
            in_flight: Some(3.0),
        },
        venues: vec![
            VenueRow {
                venue: "okx".into(),
                status: Some("healthy".into()),
                conns: (2, Some(2)),
                frames_per_s: Some(1000.0),
                events_per_s: Some(1500.0),
                lag: Latency {
                    p50: Some(Quantile::Value(0.012)),
                    p99: Some(Quantile::Above(65.536)),
                },
                ack: Latency {
                    p50: Some(Quantile::Value(0.0004)),
                    p99: Some(Quantile::Value(0.0021)),
                },
                gaps: 4,
                reconnects: 1,
                stale: Some(2),
            },
            VenueRow {
                venue: "binance-spot".into(),
                status: Some("degraded".into()),
                conns: (0, Some(1)),
                frames_per_s: Some(234.0),
                events_per_s: Some(500.0),
                stale: None,
                ..VenueRow::default()
            },
        ],
    }
}

fn health() -> HealthDoc {
    serde_json::from_str(
        r#"{"status":"degraded","nats":{"state":"connected"},"venues":{
          "okx":{"status":"healthy","connections":[
             {"index":0,"state":"connected","last_frame_age_ms":15,"reconnects":1,"last_error":null},
             {"index":1,"state":"connected","last_frame_age_ms":2100,"reconnects":0,"last_error":"closed by venue"}],
           "instruments":[
             {"instrument":"BTC-USDT","symbol":"btc-usdt",
              "data_types":{"trade":{"age_ms":120,"state":"live"},"ticker":{"age_ms":null,"state":"waiting"}},
              "book":{"state":"synced","last_update_id":123,"age_ms":40}},
             {"instrument":"ETH-USDT","symbol":"eth-usdt",
              "data_types":{"trade":{"age_ms":65000,"state":"stale"}}}]},
          "binance-spot":{"status":"degraded","connections":[{"index":0,"state":"reconnecting"}]}}}"#,
    )
    .unwrap()
}

fn draw(width: u16, height: u16, interactive: bool, ui: &Ui) -> Vec<String> {
    let (o, h) = (overview(), health());
    let screen = Screen {
        url: "http://127.0.0.1:8080",
        overview: &o,
        health: &h,
        error: None,
        interactive,
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|f| render(&screen, ui, f.area(), f.buffer_mut()))
        .unwrap();
    text(terminal.backend().buffer())
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_venues_table_shows_every_column_aligned() {
    let lines = draw(120, 8, true, &Ui::default());
    assert_eq!(
        lines,
        [
            "mdrelay top  http://127.0.0.1:8080  status degraded  nats connected  (over 1.0s)",
            "frames/s 1234  events/s 2000  stored/s 1990  duplicate/s 10  dropped/s 0  in flight 3",
            "",
            "VENUE         STATUS    CONN  FRAMES/S  EVENTS/S  LAG P50  LAG P99  ACK P50  ACK P99  GAPS  RECONN  STALE",
            "okx           healthy    2/2      1000      1500     12ms     >66s    400us    2.1ms     4       1      2",
            "binance-spot  degraded   0/1       234       500        -        -        -        -     0       0      -",
            "",
            "up/down select   Enter instruments   q/Esc quit",
        ]
    );
}

#[test]
fn the_selected_venue_is_highlighted_only_in_the_live_view() {
    let (o, h) = (overview(), health());
    let mut screen = Screen {
        url: "u",
        overview: &o,
        health: &h,
        error: None,
        interactive: true,
    };
    let ui = Ui {
        selected: 1,
        ..Ui::default()
    };
    let mut terminal = Terminal::new(TestBackend::new(120, 8)).unwrap();
    terminal
        .draw(|f| render(&screen, &ui, f.area(), f.buffer_mut()))
        .unwrap();
    let buf = terminal.backend().buffer();
    // Row 5 is binance-spot, the second venue.
    assert!(buf[(0, 5)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(0, 4)].modifier.contains(Modifier::REVERSED));
    screen.interactive = false;
    let area = Rect::new(0, 0, 120, 8);
    let mut plain_buf = Buffer::empty(area);
    render(&screen, &ui, area, &mut plain_buf);
    assert!(!plain_buf[(0, 5)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn a_drilled_venue_shows_its_connections_and_instruments() {
    let ui = Ui {
        venue: Some("okx".into()),
        ..Ui::default()
    };
    let lines = draw(140, 16, false, &ui);
    assert_eq!(
        lines[3..],
        [
            "VENUE  STATUS   CONN  FRAMES/S  EVENTS/S  LAG P50  LAG P99  ACK P50  ACK P99  GAPS  RECONN  STALE",
            "okx    healthy   2/2      1000      1500     12ms     >66s    400us    2.1ms     4       1      2",
            "",
            "CONN  STATE      LAST FRAME  RECONNECTS  LAST ERROR",
            "0     connected        15ms           1",
            "1     connected        2.1s           0  closed by venue",
            "",
            "INSTRUMENT  SYMBOL    trade        ticker   BOOK    BOOK ID  BOOK AGE",
            "BTC-USDT    btc-usdt  live 120ms   waiting  synced  123      40ms",
            "ETH-USDT    eth-usdt  stale 1m05s  -        -       -        -",
        ]
    );
}

#[test]
fn book_columns_show_only_where_an_instrument_has_a_book() {
    let mut h = health();
    let okx = h.venues.get_mut("okx").unwrap();
    for i in okx.instruments.as_mut().unwrap() {
        i.book = None;
    }
    let o = overview();
    let screen = Screen {
        url: "u",
        overview: &o,
        health: &h,
        error: None,
        interactive: false,
    };
    let ui = Ui {
        venue: Some("okx".into()),
        ..Ui::default()
    };
    let out = plain(&screen, &ui, 200);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[lines.len() - 3..],
        [
            "INSTRUMENT  SYMBOL    trade        ticker",
            "BTC-USDT    btc-usdt  live 120ms   waiting",
            "ETH-USDT    eth-usdt  stale 1m05s  -",
        ]
    );
}

#[test]
fn a_venue_without_instrument_health_says_n_a() {
    let ui = Ui {
        venue: Some("binance-spot".into()),
        ..Ui::default()
    };
    let (o, h) = (overview(), health());
    let screen = Screen {
        url: "u",
        overview: &o,
        health: &h,
        error: Some("cannot reach the relay"),
        interactive: false,
    };
    let out = plain(&screen, &ui, 200);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[2],
        "scrape failed (figures are older): cannot reach the relay"
    );
    assert_eq!(lines.last(), Some(&crate::cli::top::detail::NO_INSTRUMENTS));
    assert!(
        lines.contains(&"0     reconnecting           -         n/a"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn plain_text_is_as_tall_as_its_content() {
    let (o, h) = (overview(), health());
    let screen = Screen {
        url: "u",
        overview: &o,
        health: &h,
        error: None,
        interactive: false,
    };
    let out = plain(&screen, &Ui::default(), 240);
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.lines().all(|l| l == l.trim_end()));
}
