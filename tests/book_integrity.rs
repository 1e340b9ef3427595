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
    assert_mismatch(&venue, altered);
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

#[test]
fn kraken_v1_checksums_match_on_recorded_frames_and_catch_an_altered_level() {
    let venue = load_venue(&root().join("venues/kraken-v1.toml")).unwrap();
    let events = book_events(&venue, &lines("benches/data/kraken-v1.book.jsonl"));
    let with_checksum = events
        .iter()
        .filter(|e| matches!(&e.payload, Payload::Book(u) if u.checksum.is_some()))
        .count();
    assert!(with_checksum > 2900, "recorded checksums: {with_checksum}");
    let (published, gaps) = check(&venue, events.clone());
    assert!(
        gaps.is_empty(),
        "{} mismatches, first: {:?}",
        gaps.len(),
        gaps.first()
    );
    assert_eq!(published, events.len());
    // Alter the best ask of the first snapshot: the next checksum over the
    // top 10 levels no longer matches.
    let mut altered = events;
    let i = altered
        .iter()
        .position(|e| matches!(&e.payload, Payload::Book(u) if u.kind == mdrelay::domain::BookKind::Snapshot && !u.asks.is_empty()))
        .unwrap();
    if let Payload::Book(u) = &mut altered[i].payload {
        let best = u.asks.iter_mut().min_by_key(|l| l.price).unwrap();
        best.quantity += rust_decimal::Decimal::ONE;
    }
    assert_mismatch(&venue, altered);
}

/// The keeper reports a checksum mismatch for `events`.
fn assert_mismatch(venue: &Venue, events: Vec<Event>) {
    let (_, gaps) = check(venue, events);
    assert!(
        gaps.iter().any(|g| g.contains("checksum mismatch")),
        "{gaps:?}"
    );
}

/// For every venue whose file declares a book sequence rule: in its
/// recorded book fixture, dropping one delta is detected as a gap.
#[test]
fn every_sequence_rule_catches_a_dropped_delta() {
    use mdrelay::application::fixture::{FrameLine, parse_frame_line, read_cases_file};
    let (venues, problems) = mdrelay::config::venue::load_venues_dir(&root().join("venues"));
    assert!(problems.is_empty());
    let mut checked = Vec::new();
    let mut skipped = Vec::new();
    for (id, venue) in &venues {
        if venue.book.sequence.is_none() {
            continue;
        }
        let dir = root().join("fixtures").join(id);
        let market = read_cases_file(&dir)
            .unwrap()
            .cases
            .get("book")
            .and_then(|o| o.market.clone());
        let mut mapper = Mapper::new(venue.id.clone(), market, Default::default());
        let mut events = Vec::new();
        let mut out = Vec::new();
        for line in std::fs::read_to_string(dir.join("book.jsonl"))
            .unwrap()
            .lines()
        {
            if let FrameLine::Frame(f) = parse_frame_line(line) {
                out.clear();
                if mapper
                    .map(venue, f.as_raw(), Timestamp(0), &mut out)
                    .is_ok()
                {
                    events.extend(
                        out.drain(..)
                            .filter(|e| matches!(e.payload, Payload::Book(_))),
                    );
                }
            }
        }
        let sequenced = events
            .iter()
            .filter(|e| matches!(&e.payload, Payload::Book(u) if u.kind == mdrelay::domain::BookKind::Delta
                && (u.prev_update_id.is_some() || u.first_update_id.is_some() || u.last_update_id.is_some())))
            .count();
        if sequenced < 2 {
            skipped.push(format!("{id} ({sequenced} sequenced deltas)"));
            continue;
        }
        let (_, baseline) = check(venue, events.clone());
        let detected = (0..events.len()).any(|i| {
            let is_delta = matches!(&events[i].payload, Payload::Book(u) if u.kind == mdrelay::domain::BookKind::Delta);
            if !is_delta {
                return false;
            }
            let mut dropped = events.clone();
            dropped.remove(i);
            let (_, gaps) = check(venue, dropped);
            gaps.len() > baseline.len() && gaps.iter().any(|g| g.contains("gap"))
        });
        if detected {
            checked.push(id.clone());
        } else {
            // The fixture's deltas are not a contiguous recorded run (doc
            // samples, or deltas that wait for a REST snapshot first).
            skipped.push(format!("{id} (no contiguous run in the fixture)"));
        }
    }
    eprintln!("dropped delta detected for: {checked:?}; not checkable from fixtures: {skipped:?}");
    assert!(checked.len() >= 7, "{checked:?}");
}
