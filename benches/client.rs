//! The consumer's cost per level change: `mdrelay::client::BookTracker`
//! applying the book events the relay publishes for one instrument
//! (recorded frames, run through the relay's own keeper so that they carry
//! what it publishes: marks or update ids), from the relay's snapshot taken
//! after the first one. `apply`: events already decoded; `decode+apply`:
//! from the published bytes (JSON, protobuf). Throughput in elements = level
//! changes (the target is at least 1M per second on one core).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use mdrelay::client::BookTracker;
use mdrelay::config::venue::load_venue;
use mdrelay::domain::{
    BookKind, BookSnapshot, BookUpdate, Event, Level, Payload, SequenceRule, Timestamp,
};
use mdrelay::engine::book::{BookKeeper, Step};
use mdrelay::engine::mapper::{Mapper, RawFrame};
use mdrelay::serialization::{decode, to_json, to_protobuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The relay's snapshot after the first book event, and the book events it
/// publishes after it, for `instrument`.
fn published(venue: &str, file: &str, instrument: &str) -> (BookSnapshot, Vec<Event>) {
    let v = load_venue(&root().join("venues").join(format!("{venue}.toml"))).unwrap();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut keeper = BookKeeper::new();
    keeper.keep_snapshot(&v.book, instrument, Duration::from_secs(10));
    let (mut out, mut steps, mut events) = (Vec::new(), Vec::new(), Vec::new());
    let mut snapshot = None;
    let venue_id: Arc<str> = Arc::from(venue);
    for l in std::fs::read_to_string(root().join("benches/data").join(file))
        .unwrap()
        .lines()
    {
        out.clear();
        if mapper
            .map(&v, RawFrame::Text(l), Timestamp(1), &mut out)
            .is_err()
        {
            continue;
        }
        for e in out.drain(..) {
            if matches!(&e.payload, Payload::Book(_)) && e.instrument.venue_instrument == instrument
            {
                keeper.on_update(&v.book, e, &mut steps);
            }
        }
        for s in steps.drain(..) {
            if let Step::Publish(mut e) = s {
                keeper.stamp(&mut e);
                if snapshot.is_some() {
                    events.push(e);
                }
            }
        }
        if snapshot.is_none() {
            let mut snaps = Vec::new();
            keeper.snapshots(&venue_id, &v.book, 0, Timestamp(1), &mut snaps);
            if let Some(Payload::BookSnapshot(s)) = snaps.pop().map(|e| e.payload) {
                snapshot = Some(*s);
            }
        }
    }
    (snapshot.expect("a snapshot"), events)
}

/// Binance spot NKNUSDT: its recorded REST snapshot, and the recorded deltas
/// after it (positioned by update ids, checked with the venue's rule).
fn binance() -> (BookSnapshot, Vec<Event>) {
    let rest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/binance-spot/rest/NKNUSDT.json")).unwrap(),
    )
    .unwrap();
    let side = |k: &str| -> Vec<Level> {
        rest[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| Level {
                price: l[0].as_str().unwrap().parse().unwrap(),
                quantity: l[1].as_str().unwrap().parse().unwrap(),
            })
            .collect()
    };
    let id = rest["lastUpdateId"].as_i64().unwrap();
    let snap = BookSnapshot {
        book: BookUpdate {
            kind: BookKind::Snapshot,
            bids: side("bids"),
            asks: side("asks"),
            first_update_id: None,
            last_update_id: Some(id),
            prev_update_id: None,
            checksum: None,
            mark: None,
        },
        sequence: Some(SequenceRule::Contiguous),
        depth: None,
    };
    let v = load_venue(&root().join("venues/binance-spot.toml")).unwrap();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut out = Vec::new();
    let mut events = Vec::new();
    for l in std::fs::read_to_string(root().join("benches/data/binance-spot.book.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"s\":\"NKNUSDT\""))
    {
        out.clear();
        mapper
            .map(&v, RawFrame::Text(l), Timestamp(1), &mut out)
            .unwrap();
        events.extend(out.drain(..).filter(
            |e| matches!(&e.payload, Payload::Book(u) if u.last_update_id.is_some_and(|u| u > id)),
        ));
    }
    (snap, events)
}

fn levels(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match &e.payload {
            Payload::Book(u) => (u.bids.len() + u.asks.len()) as u64,
            _ => 0,
        })
        .sum()
}

fn bench_book(c: &mut Criterion, name: &str, (snap, events): (BookSnapshot, Vec<Event>)) {
    let start = BookTracker::from_snapshot(&snap, Timestamp(0));
    // Every event must apply (the bench would otherwise measure skips).
    let mut check = start.clone();
    for e in &events {
        let v = check.on_event(e);
        assert!(
            matches!(
                v,
                mdrelay::client::Verdict::Applied(_) | mdrelay::client::Verdict::Reset
            ),
            "{name}: {v:?}"
        );
    }
    let n = levels(&events);
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("apply/{name}"), |b| {
        b.iter_batched(
            || start.clone(),
            |mut t| {
                for e in &events {
                    std::hint::black_box(t.on_event(e));
                }
                t
            },
            BatchSize::LargeInput,
        )
    });
    for (format, ct) in [
        ("json", "application/json"),
        ("protobuf", "application/x-protobuf"),
    ] {
        let bytes: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut b = Vec::new();
                if format == "json" {
                    to_json(e, &mut b)
                } else {
                    to_protobuf(e, &mut b)
                }
                b
            })
            .collect();
        g.bench_function(format!("decode+apply/{name}/{format}"), |b| {
            b.iter_batched(
                || start.clone(),
                |mut t| {
                    for p in &bytes {
                        let e = decode(Some(ct), p).unwrap();
                        std::hint::black_box(t.on_event(&e));
                    }
                    t
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    eprintln!(
        "{name}: {} events, {n} level changes, snapshot {}+{} levels",
        events.len(),
        snap.book.bids.len(),
        snap.book.asks.len()
    );
}

fn bench_all(c: &mut Criterion) {
    bench_book(
        c,
        "okx-ELON-USDT",
        published("okx", "okx.book.jsonl", "ELON-USDT"),
    );
    bench_book(
        c,
        "coinbase-exchange-SKL-GBP",
        published(
            "coinbase-exchange",
            "coinbase-exchange.book.jsonl",
            "SKL-GBP",
        ),
    );
    bench_book(c, "binance-spot-NKNUSDT", binance());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_all
}
criterion_main!(benches);
