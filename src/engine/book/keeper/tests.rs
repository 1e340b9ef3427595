use super::*;
use crate::domain::Level;
use crate::engine::book::SequenceRule;
use std::str::FromStr;

fn ev(kind: BookKind, first: i64, last: i64, prev: Option<i64>) -> Event {
    let inst = Arc::new(Instrument::new("BTCUSDT", "BTC/USDT"));
    Event {
        venue: Arc::from("v"),
        instrument: inst,
        exchange_time: None,
        receive_time: Timestamp(0),
        id: EventId(format!("{last}")),
        payload: Payload::Book(BookUpdate {
            kind,
            bids: vec![Level {
                price: rust_decimal::Decimal::from_str("1").unwrap(),
                quantity: rust_decimal::Decimal::ONE,
            }],
            asks: vec![],
            first_update_id: Some(first),
            last_update_id: Some(last),
            prev_update_id: prev,
            checksum: None,
            mark: None,
        }),
    }
}

fn published(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Publish(e) => Some(e.id.0.clone()),
            Step::Gap { .. } => Some("gap".into()),
            Step::Mismatch { .. } => Some("mismatch".into()),
            Step::Dropped(..) => None,
        })
        .collect()
}

fn dropped(steps: &[Step]) -> u64 {
    steps
        .iter()
        .map(|s| match s {
            Step::Dropped(_, n) => *n,
            _ => 0,
        })
        .sum()
}

#[test]
fn contiguous_sequence_detects_a_missing_delta() {
    let rules = BookRules {
        sequence: Some(SequenceRule::Contiguous),
        ..Default::default()
    };
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.on_update(&rules, ev(BookKind::Snapshot, 0, 10, None), &mut out);
    k.on_update(&rules, ev(BookKind::Delta, 11, 12, None), &mut out);
    k.on_update(&rules, ev(BookKind::Delta, 15, 16, None), &mut out); // 13..14 missing
    k.on_update(&rules, ev(BookKind::Delta, 17, 18, None), &mut out); // dropped until a snapshot
    k.on_update(&rules, ev(BookKind::Snapshot, 0, 30, None), &mut out);
    k.on_update(&rules, ev(BookKind::Delta, 31, 31, None), &mut out);
    assert_eq!(published(&out), ["10", "12", "gap", "30", "31"]);
    assert_eq!(
        dropped(&out),
        2,
        "the delta after the hole, and the one while resyncing"
    );
}

#[test]
fn rest_snapshot_bootstrap_discards_stale_deltas() {
    let rules = BookRules {
        sequence: Some(SequenceRule::Contiguous),
        ..Default::default()
    };
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    for (f, l) in [(95, 99), (100, 104), (105, 110)] {
        k.on_update(&rules, ev(BookKind::Delta, f, l, None), &mut out);
    }
    assert!(out.is_empty(), "buffered");
    k.on_rest_snapshot(&rules, ev(BookKind::Snapshot, 0, 102, None), &mut out)
        .unwrap();
    assert_eq!(published(&out), ["102", "104", "110"]);
    assert_eq!(dropped(&out), 1, "95..99 is in the snapshot");
}

#[test]
fn a_snapshot_older_than_the_buffer_is_refetched() {
    let rules = BookRules {
        sequence: Some(SequenceRule::Contiguous),
        ..Default::default()
    };
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    k.on_update(&rules, ev(BookKind::Delta, 200, 210, None), &mut out);
    assert!(
        k.on_rest_snapshot(&rules, ev(BookKind::Snapshot, 0, 150, None), &mut out)
            .is_err()
    );
    assert!(k.waiting("BTCUSDT"));
    k.on_rest_snapshot(&rules, ev(BookKind::Snapshot, 0, 205, None), &mut out)
        .unwrap();
    assert_eq!(published(&out), ["205", "210"]);
}

/// Rules of a venue whose REST snapshot lines up with the deltas by
/// exchange time (`[book.snapshot] sync = "timestamp"`), no update ids.
fn timestamp_rules() -> BookRules {
    use crate::engine::expr::Expr;
    use crate::engine::venue::{Field, RestSnapshot, Route};
    let route = Route {
        name: "book.snapshot".into(),
        data_type: crate::domain::DataType::L2Orderbook,
        keys: Vec::new(),
        when: None,
        each: None,
        time_unit: crate::domain::TimeUnit::Auto,
        fields: vec![None; Field::COUNT],
        level_memory: None,
    };
    BookRules {
        snapshot: Some(RestSnapshot {
            url: Expr::compile("\"http://127.0.0.1/\"").unwrap(),
            route,
            align: SnapshotAlign::Timestamp,
            max_requests_per_second: 1.0,
        }),
        ..Default::default()
    }
}

/// A book event at exchange time `ms` with no update ids, named `name`.
fn at(kind: BookKind, ms: Option<i64>, name: &str) -> Event {
    let mut e = ev(kind, 0, 0, None);
    e.exchange_time = ms.map(|ms| Timestamp(ms * 1_000_000));
    e.id = EventId(name.into());
    if let Payload::Book(u) = &mut e.payload {
        u.first_update_id = None;
        u.last_update_id = None;
    }
    e
}

#[test]
fn timestamp_sync_drops_deltas_at_or_before_the_snapshot_time() {
    let rules = timestamp_rules();
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    for (ms, name) in [(990, "d990"), (1000, "d1000"), (1001, "d1001")] {
        k.on_update(&rules, at(BookKind::Delta, Some(ms), name), &mut out);
    }
    assert!(out.is_empty(), "buffered while the snapshot is fetched");
    k.on_rest_snapshot(&rules, at(BookKind::Snapshot, Some(1000), "snap"), &mut out)
        .unwrap();
    assert_eq!(published(&out), ["snap", "d1001"]);
    assert_eq!(dropped(&out), 2, "990 and 1000 are in the snapshot");
    k.on_update(&rules, at(BookKind::Delta, Some(1002), "d1002"), &mut out);
    assert_eq!(published(&out), ["snap", "d1001", "d1002"]);
}

#[test]
fn timestamp_sync_checks_deltas_arriving_after_the_snapshot() {
    let rules = timestamp_rules();
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    k.on_rest_snapshot(&rules, at(BookKind::Snapshot, Some(1000), "snap"), &mut out)
        .unwrap();
    k.on_update(&rules, at(BookKind::Delta, Some(999), "old"), &mut out);
    k.on_update(&rules, at(BookKind::Delta, Some(1000), "same"), &mut out);
    k.on_update(&rules, at(BookKind::Delta, Some(1003), "new"), &mut out);
    assert_eq!(published(&out), ["snap", "new"]);
    assert_eq!(dropped(&out), 2);
}

#[test]
fn timestamp_sync_refetches_a_snapshot_without_a_time() {
    let rules = timestamp_rules();
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    k.on_update(&rules, at(BookKind::Delta, Some(5), "d5"), &mut out);
    let err = k
        .on_rest_snapshot(&rules, at(BookKind::Snapshot, None, "snap"), &mut out)
        .unwrap_err();
    assert!(err.0.contains("without a time"), "{err:?}");
    assert!(k.waiting("BTCUSDT"), "still waiting, the delta still held");
    assert_eq!(k.held(), 1);
}

#[test]
fn deltas_arriving_after_the_snapshot_are_checked_against_it() {
    let rules = BookRules {
        sequence: Some(SequenceRule::Contiguous),
        ..Default::default()
    };
    let mut k = BookKeeper::new();
    let mut out = Vec::new();
    k.await_snapshot(&rules, "BTCUSDT");
    k.on_rest_snapshot(&rules, ev(BookKind::Snapshot, 0, 100, None), &mut out)
        .unwrap();
    k.on_update(&rules, ev(BookKind::Delta, 90, 95, None), &mut out); // stale
    k.on_update(&rules, ev(BookKind::Delta, 96, 103, None), &mut out); // spans 101
    k.on_update(&rules, ev(BookKind::Delta, 104, 104, None), &mut out);
    k.on_update(&rules, ev(BookKind::Delta, 106, 107, None), &mut out); // gap
    assert_eq!(published(&out), ["100", "103", "104", "gap"]);
}

#[test]
fn top_snapshots_follow_the_book_and_skip_unchanged_or_resyncing_ones() {
    let rules = BookRules {
        sequence: Some(SequenceRule::Contiguous),
        ..Default::default()
    };
    let venue: Arc<str> = Arc::from("v");
    let mut k = BookKeeper::new();
    k.keep_top(&rules, "BTCUSDT", 1, Duration::from_secs(1));
    assert!(k.has_tops());
    let mut steps = Vec::new();
    let mut tops = Vec::new();
    k.tops(&venue, 1000, Timestamp(0), &mut tops);
    assert!(tops.is_empty(), "no book yet");
    let mut snap = ev(BookKind::Snapshot, 0, 10, None);
    if let Payload::Book(u) = &mut snap.payload {
        u.bids.push(Level {
            price: rust_decimal::Decimal::TWO,
            quantity: rust_decimal::Decimal::ONE,
        });
    }
    k.on_update(&rules, snap, &mut steps);
    k.tops(&venue, 1500, Timestamp(0), &mut tops);
    assert!(tops.is_empty(), "not a multiple of the interval");
    k.tops(&venue, 2000, Timestamp(0), &mut tops);
    assert_eq!(tops.len(), 1);
    assert_eq!(tops[0].id.0, "v:l2_top:BTCUSDT:2000");
    assert_eq!(tops[0].data_type(), DataType::L2Top);
    let Payload::BookTop(u) = &tops[0].payload else {
        panic!("a book top")
    };
    assert_eq!(
        (u.bids.len(), u.bids[0].price),
        (1, rust_decimal::Decimal::TWO)
    );
    assert_eq!(u.last_update_id, Some(10));
    k.tops(&venue, 3000, Timestamp(0), &mut tops);
    assert_eq!(tops.len(), 1, "unchanged: skipped");
    k.on_update(&rules, ev(BookKind::Delta, 15, 16, None), &mut steps); // gap
    k.tops(&venue, 4000, Timestamp(0), &mut tops);
    assert_eq!(tops.len(), 1, "resyncing: nothing");
}
