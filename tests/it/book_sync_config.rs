//! `[book.snapshot] sync`: what each mode requires, refused with the field
//! named. The venue is the shipped Binance spot file with its
//! `[book.snapshot]` section edited (synthetic variants, not a real venue).

use std::path::Path;

use mdrelay::config::venue::compile_venue;
use mdrelay::engine::venue::SnapshotAlign;

const SNAPSHOT: &str = r#"last_update_id = '.lastUpdateId'
first_delta = "spans_next""#;

fn source(replacement: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("venues/binance-spot.toml")).unwrap();
    assert!(src.contains(SNAPSHOT), "the shipped file changed");
    src.replace(SNAPSHOT, replacement)
}

fn compile(replacement: &str) -> Result<SnapshotAlign, Vec<String>> {
    let src = source(replacement);
    match compile_venue("binance-spot", Path::new("venues/binance-spot.toml"), &src) {
        Ok(v) => Ok(v.book.snapshot.expect("a snapshot").align),
        Err(ps) => Err(ps.iter().map(|p| p.to_string()).collect()),
    }
}

#[test]
fn update_id_sync_is_the_default_and_needs_an_id_and_a_first_delta_rule() {
    assert!(matches!(compile(SNAPSHOT), Ok(SnapshotAlign::UpdateId(_))));
    let got = compile("first_delta = \"spans\"").unwrap_err();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("book.snapshot.last_update_id: required with sync = \"update_id\""),
        "{got:?}"
    );
    let got = compile("last_update_id = '.lastUpdateId'").unwrap_err();
    assert!(
        got[0].contains("book.snapshot.first_delta: required"),
        "{got:?}"
    );
}

#[test]
fn timestamp_sync_needs_a_snapshot_time_and_exchange_times_on_book_routes() {
    let got = compile("sync = \"timestamp\"\nfirst_delta = \"spans\"").unwrap_err();
    assert!(
        got.iter()
            .any(|p| p.contains("book.snapshot.time: required with sync = \"timestamp\"")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|p| p.contains("book.snapshot.first_delta: only with sync = \"update_id\"")),
        "{got:?}"
    );
    // Binance's depth routes map `exchange_time` (`.E`): with a snapshot
    // time, the timestamp mode compiles.
    assert_eq!(
        compile("sync = \"timestamp\"\ntime = '.T'"),
        Ok(SnapshotAlign::Timestamp)
    );
    // A book route without `exchange_time` cannot be placed by time.
    let src = source("sync = \"timestamp\"\ntime = '.T'");
    let (start, _) = src
        .match_indices("type = \"l2_orderbook\"")
        .next()
        .expect("a book route");
    let route = &src[start..];
    let line_end = route
        .find("exchange_time")
        .expect("the book route maps exchange_time");
    let stripped = format!(
        "{}{}#{}",
        &src[..start],
        &route[..line_end],
        &route[line_end..]
    );
    let got = match compile_venue(
        "binance-spot",
        Path::new("venues/binance-spot.toml"),
        &stripped,
    ) {
        Ok(_) => Vec::new(),
        Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
    };
    assert!(
        got.iter()
            .any(|p| p.contains(".exchange_time: required: [book.snapshot] sync = \"timestamp\"")),
        "{got:?}"
    );
}
