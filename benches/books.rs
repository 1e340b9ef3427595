//! Book integrity cost per update: the book keeper (sequence rule, local
//! book, checksum) over recorded book events, mapped beforehand. Each
//! iteration runs a fresh keeper over the whole file; criterion reports the
//! time per update (throughput in elements = updates).
//!
//! Each venue also runs with `book_snapshot` on (`+snapshots`): the cost of
//! keeping full books, stamping relay marks and taking a snapshot.
//!
//! Allocation counts are asserted by `tests/book_alloc.rs`.

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use mdrelay::config::venue::load_venue;
use mdrelay::domain::{Event, Payload, Timestamp};
use mdrelay::engine::book::{BookKeeper, Step};
use mdrelay::engine::mapper::{Mapper, RawFrame};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bench_keeper(c: &mut Criterion, venue: &str, file: &str) {
    let v = load_venue(&root().join("venues").join(format!("{venue}.toml"))).unwrap();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut out = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    for l in std::fs::read_to_string(root().join("benches/data").join(file))
        .unwrap()
        .lines()
    {
        out.clear();
        if mapper
            .map(&v, RawFrame::Text(l), Timestamp(0), &mut out)
            .is_ok()
        {
            events.extend(
                out.drain(..)
                    .filter(|e| matches!(e.payload, Payload::Book(_))),
            );
        }
    }
    let what = match (&v.book.sequence, &v.book.checksum) {
        (Some(_), Some(_)) => "sequence+checksum",
        (None, Some(_)) => "checksum",
        (Some(_), None) => "sequence",
        (None, None) => "none",
    };
    let mut g = c.benchmark_group("book_keeper");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function(format!("{venue}/{what}"), |b| {
        b.iter_batched(
            || (events.clone(), Vec::with_capacity(events.len())),
            |(evs, mut steps): (Vec<Event>, Vec<Step>)| {
                let mut k = BookKeeper::new();
                for e in evs {
                    k.on_update(&v.book, e, &mut steps);
                }
                std::hint::black_box(steps.len());
                steps
            },
            BatchSize::LargeInput,
        )
    });
    // The same with `book_snapshot` on every instrument: the full book kept
    // (for venues that did not keep one), each published event stamped
    // (relay marks when the events carry no update ids), and one full
    // snapshot taken per run of the file.
    let instruments: std::collections::BTreeSet<String> = events
        .iter()
        .map(|e| e.instrument.venue_instrument.clone())
        .collect();
    let venue_id: std::sync::Arc<str> = std::sync::Arc::from(venue);
    g.bench_function(format!("{venue}/{what}+snapshots"), |b| {
        b.iter_batched(
            || (events.clone(), Vec::with_capacity(events.len())),
            |(evs, mut steps): (Vec<Event>, Vec<Step>)| {
                let mut k = BookKeeper::new();
                for i in &instruments {
                    k.keep_snapshot(&v.book, i, std::time::Duration::from_secs(10));
                }
                for e in evs {
                    k.on_update(&v.book, e, &mut steps);
                }
                for s in &mut steps {
                    if let Step::Publish(e) = s {
                        k.stamp(e);
                    }
                }
                let mut snaps = Vec::new();
                k.snapshots(&venue_id, &v.book, 0, Timestamp(0), &mut snaps);
                std::hint::black_box((steps.len(), snaps.len()));
                steps
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn bench_all(c: &mut Criterion) {
    bench_keeper(c, "binance-spot", "binance-spot.book.jsonl");
    bench_keeper(c, "binance-usdm", "binance-usdm.book.jsonl");
    bench_keeper(c, "okx", "okx.book.jsonl");
    bench_keeper(c, "kraken-v1", "kraken-v1.book.jsonl");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = bench_all
}
criterion_main!(benches);
