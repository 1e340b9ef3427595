//! Payload encoding cost per event, JSON against protobuf, on the events the
//! end-to-end benchmark's blasted feeds produce (Binance spot trades, best
//! bid/ask and depth; OKX and Bitfinex books), mapped beforehand. One
//! iteration encodes every event of a feed into a reused buffer; criterion
//! reports the time per event (throughput in elements = events), and the
//! encoded bytes per event are printed once.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use mdrelay::config::venue::load_venue;
use mdrelay::domain::{Event, Timestamp};
use mdrelay::engine::mapper::{Mapper, RawFrame};
use mdrelay::serialization::PayloadFormat;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every event a recorded file maps to.
fn events(venue: &str, file: &str) -> Vec<Event> {
    let v = load_venue(&root().join("venues").join(format!("{venue}.toml"))).unwrap();
    let mut mapper = Mapper::new(v.id.clone(), None, Default::default());
    let mut out = Vec::new();
    for l in std::fs::read_to_string(root().join("benches/data").join(file))
        .unwrap()
        .lines()
    {
        let _ = mapper.map(&v, RawFrame::Text(l), Timestamp(0), &mut out);
    }
    out
}

fn bench_encode(c: &mut Criterion) {
    let feeds = [
        ("binance-spot", "binance-spot.trades.jsonl"),
        ("binance-spot", "binance-spot.bbo.jsonl"),
        ("binance-spot", "binance-spot.book.jsonl"),
        ("okx", "okx.book.jsonl"),
        ("bitfinex", "bitfinex.book.jsonl"),
    ];
    let mut g = c.benchmark_group("encode");
    for (venue, file) in feeds {
        let evs = events(venue, file);
        assert!(!evs.is_empty(), "{file} maps to events");
        g.throughput(Throughput::Elements(evs.len() as u64));
        let name = file.trim_end_matches(".jsonl");
        for (label, format) in [
            ("json", PayloadFormat::Json),
            ("protobuf", PayloadFormat::Protobuf),
        ] {
            let mut buf = Vec::with_capacity(64 * 1024);
            let bytes: usize = evs
                .iter()
                .map(|e| {
                    format.encode(e, &mut buf);
                    buf.len()
                })
                .sum();
            eprintln!("{name} {label}: {} bytes per event", bytes / evs.len());
            g.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| {
                    for e in &evs {
                        format.encode(e, &mut buf);
                        std::hint::black_box(buf.len());
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
