//! Book integrity on recorded frames, per venue with `[book]` rules: the
//! recorded sequence passes (no gap, every checksum matches); dropping one
//! delta or altering one level is detected.

use std::path::Path;

use mdrelay::application::books::{BookKeeper, Step};
use mdrelay::config::venue::load_venue;
use mdrelay::domain::{Event, Payload, Timestamp};
use mdrelay::engine::mapper::{Mapper, RawFrame};
use mdrelay::engine::venue::Venue;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Map frames and return the book events in order.
fn book_events(venue: &Venue, lines: &[String]) -> Vec<Event> {
    let mut mapper = Mapper::new(venue.id.clone(), None, Default::default());
    let mut out = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        events.clear();
        if mapper
            .map(venue, RawFrame::Text(l), Timestamp(0), &mut events)
            .is_ok()
        {
            out.extend(
                events
                    .drain(..)
                    .filter(|e| matches!(e.payload, Payload::Book(_))),
            );
        }
    }
    out
}

/// Run the keeper; return (published, gap reasons).
fn check(venue: &Venue, events: Vec<Event>) -> (usize, Vec<String>) {
    let mut k = BookKeeper::new();
    let mut steps = Vec::new();
    for e in events {
        k.on_update(&venue.book, e, &mut steps);
    }
    let mut published = 0;
    let mut gaps = Vec::new();
    for s in steps {
        match s {
            Step::Publish(_) => published += 1,
            Step::Gap { instrument, reason } => {
                gaps.push(format!("{}: {reason}", instrument.venue_instrument))
            }
        }
    }
    (published, gaps)
}

fn lines(rel: &str) -> Vec<String> {
    std::fs::read_to_string(root().join(rel))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn okx_checksums_match_on_recorded_frames_and_catch_an_altered_level() {
    let venue = load_venue(&root().join("venues/okx.toml")).unwrap();
    let frames = lines("benches/data/okx.book.jsonl");
    let events = book_events(&venue, &frames);
    let with_checksum = events
        .iter()
        .filter(|e| matches!(&e.payload, Payload::Book(u) if u.checksum.is_some_and(|c| c != 0)))
        .count();
    assert!(
        with_checksum > 1000,
        "recorded frames carry checksums ({with_checksum})"
    );
    let (published, gaps) = check(&venue, events.clone());
    assert!(
        gaps.is_empty(),
        "{} mismatches on recorded frames, first: {:?}",
        gaps.len(),
        gaps.first()
    );
    assert_eq!(published, events.len());

    // Alter one level of one delta: its checksum no longer matches.
    let mut altered = events;
    let i = altered
        .iter()
        .position(|e| matches!(&e.payload, Payload::Book(u) if u.kind == mdrelay::domain::BookKind::Delta && !u.bids.is_empty()))
        .unwrap();
    if let Payload::Book(u) = &mut altered[i].payload {
        u.bids[0].quantity += rust_decimal::Decimal::ONE;
    }
    let (_, gaps) = check(&venue, altered);
    assert!(
        gaps.iter().any(|g| g.contains("checksum mismatch")),
        "{gaps:?}"
    );
}

#[test]
fn binance_sequence_catches_a_dropped_delta() {
    let venue = load_venue(&root().join("venues/binance-spot.toml")).unwrap();
    let frames = lines("benches/data/binance-spot.book.jsonl");
    let events = book_events(&venue, &frames);
    let (_, gaps) = check(&venue, events.clone());
    assert!(gaps.is_empty(), "{gaps:?}");
    let mut dropped = events;
    dropped.remove(100);
    let (_, gaps) = check(&venue, dropped);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].contains("sequence gap"));
}
